package main

import (
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/internal/clusterview"
)

// globals are the flags every command shares. Values come from flags, then
// METAQ_* environment variables (METAQ_ZK, METAQ_ZK_ROOT, METAQ_OUTPUT...),
// then the named context (--context, else the selected one; cmd_context.go).
type globals struct {
	v      *viper.Viper
	zkAuth zkDigest       // loadZKAuth
	flags  *pflag.FlagSet // the root's persistent flags (Changed tells a given flag)
	sec    securityState  // TLS and credentials of broker connections (security.go)
}

func (g *globals) zkServers() []string {
	s := g.v.GetString("zk")
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func (g *globals) zkRoot() string           { return g.v.GetString("zk-root") }
func (g *globals) paths() coordinator.Paths { return coordinator.NewPaths(g.zkRoot()) }
func (g *globals) output() string           { return g.v.GetString("output") }
func (g *globals) timeout() time.Duration   { return g.v.GetDuration("timeout") }
func (g *globals) logger() *slog.Logger {
	lvl := slog.LevelInfo
	if g.v.GetBool("verbose") {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
}

func newRootCmd() *cobra.Command {
	g := &globals{v: viper.New()}
	root := &cobra.Command{
		Use:           "metaq",
		Short:         "metaq: a MetaQ-compatible message queue — broker daemon and operator tool",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := g.applyContext(cmd); err != nil {
				return err
			}
			// Every broker connection of the command (clusterview.DialBroker)
			// uses the security flags (security.go).
			cmd.SetContext(clusterview.WithDial(cmd.Context(), g.brokerConnOptions))
			if err := g.loadZKAuth(); err != nil {
				return err
			}
			switch g.output() {
			case "table", "json":
			default:
				return usageError{errorf("-o %q: want table or json", g.output())}
			}
			return nil
		},
	}
	pf := root.PersistentFlags()
	g.flags = pf
	pf.String("zk", "", "ZooKeeper servers, host:port[,host:port...] (env METAQ_ZK)")
	pf.String("zk-root", "/meta", "ZooKeeper root of the cluster (env METAQ_ZK_ROOT)")
	pf.String("zk-auth-file", "", "file (mode 0600) holding the ZooKeeper digest credentials user:password "+
		"(env METAQ_ZK_AUTH_FILE; or the credentials themselves in env METAQ_ZK_AUTH)")
	pf.StringP("output", "o", "table", "output format: table or json (env METAQ_OUTPUT)")
	pf.Duration("timeout", 10*time.Second, "timeout for one operation against ZooKeeper or a broker")
	pf.BoolP("verbose", "v", false, "debug logging")
	pf.String("context", "", "named context supplying --zk/--zk-root and the security flags (env METAQ_CONTEXT; default: the selected one, see `metaq context`)")
	addSecurityFlags(pf)
	_ = g.v.BindPFlags(pf)
	g.v.SetEnvPrefix("METAQ")
	g.v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	g.v.AutomaticEnv()
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })

	// One line per command; each lives in its own cmd_*.go file.
	root.AddCommand(
		newBrokerCmd(g),
		newClusterCmd(g),
		newBrokersCmd(g),
		newTopicsCmd(g),
		newStatsCmd(g),
		newZKCmd(g),
		newSegmentsCmd(g),
		newHealthcheckCmd(g),
		newProduceCmd(g),
		newBenchCmd(g),
		newGroupsCmd(g),
		newConsumeCmd(g),
		newTxCmd(g),
		newContextCmd(g),
		newUsersCmd(g),
		newDashboardCmd(g),
		newTopCmd(g),
	)
	return root
}
