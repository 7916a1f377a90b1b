package main

import (
	"github.com/spf13/cobra"
)

func newBrokerCmd(g *globals) *cobra.Command {
	var configPath, listen, admin string
	var dash bool
	var cpuProfile string
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "run a broker from a MetaQ server.ini (or the same settings as YAML/TOML)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			stopProfile, err := startCPUProfile(cpuProfile)
			if err != nil {
				return err
			}
			defer stopProfile()
			return runBroker(cmd.Context(), g, configPath, listen, admin, dash)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "", "listen address host:port (default: all interfaces on serverPort)")
	cmd.Flags().StringVar(&admin, "admin", "", "serve Prometheus /metrics and /healthz on host:port (default: 127.0.0.1:<adminPort> when the config sets adminPort)")
	cmd.Flags().BoolVar(&dash, "dashboard", false, "also serve the read-only web dashboard at /dashboard/ on the admin port (needs the admin port and ZooKeeper; for a secured cluster run `metaq dashboard` with credentials instead)")
	cmd.Flags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the broker's whole run to this file (for benchmarks; written at shutdown)")
	cmd.Flags().StringVarP(&configPath, "config", "c", "conf/server.ini", "broker configuration file (.ini, .yaml, .toml)")
	return cmd
}
