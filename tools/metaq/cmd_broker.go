package main

import (
	"github.com/spf13/cobra"
)

func newBrokerCmd(g *globals) *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "run a broker from a MetaQ server.ini (or the same settings as YAML/TOML)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBroker(cmd.Context(), g, configPath)
		},
	}
	cmd.Flags().StringVarP(&configPath, "config", "c", "conf/server.ini", "broker configuration file (.ini, .yaml, .toml)")
	return cmd
}
