package main

import (
	"fmt"
	"os"

	"github.com/metaq-go/metaq/consumer"
	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/producer"
	"github.com/metaq-go/metaq/zkrecipes"
)

// ZooKeeper digest credentials of the CLI (docs/security-zookeeper.md): the
// file named by --zk-auth-file (env METAQ_ZK_AUTH_FILE, or the context's
// zk_auth_file), else the env var METAQ_ZK_AUTH ("user:password"). Never a
// flag value, which every user of the machine can read in the process list.

// zkAuthEnv holds "user:password" for the CLI's ZooKeeper sessions.
const zkAuthEnv = "METAQ_ZK_AUTH"

// zkDigest is the identity commands authenticate to ZooKeeper as.
type zkDigest struct{ user, password string }

// loadZKAuth reads the CLI's digest credentials once, before any command runs.
func (g *globals) loadZKAuth() error {
	g.zkAuth = zkDigest{}
	if file := g.v.GetString("zk-auth-file"); file != "" {
		u, pw, err := zkrecipes.ReadDigestFile(file)
		if err != nil {
			return usageError{fmt.Errorf("--zk-auth-file: %w", err)}
		}
		g.zkAuth = zkDigest{u, pw}
		return nil
	}
	if v := os.Getenv(zkAuthEnv); v != "" {
		u, pw, err := zkrecipes.ParseDigest(v)
		if err != nil {
			return usageError{fmt.Errorf("%s: %w (the value is not shown)", zkAuthEnv, err)}
		}
		g.zkAuth = zkDigest{u, pw}
	}
	return nil
}

// zkSessionOptions authenticate a CLI session (none without credentials).
// The CLI acts for whichever identity it holds, so it may create any node
// kind: with the cluster identity it secures or repairs cluster nodes, with
// a group identity it resets that group's offsets.
func (g *globals) zkSessionOptions() []zkrecipes.Option {
	return g.paths().SessionOptions(g.zkAuth.user, g.zkAuth.password, coordinator.RoleCluster)
}

// producerZK is producer.WithZooKeeper with the CLI's credentials.
func (g *globals) producerZK() []producer.Option {
	opts := []producer.Option{producer.WithZooKeeper(g.zkServers(), g.zkRoot())}
	if g.zkAuth.user != "" {
		opts = append(opts, producer.WithZKDigestAuth(g.zkAuth.user, g.zkAuth.password))
	}
	return opts
}

// consumerZK is consumer.WithZooKeeper with the CLI's credentials.
func (g *globals) consumerZK() []consumer.Option {
	opts := []consumer.Option{consumer.WithZooKeeper(g.zkServers(), g.zkRoot())}
	if g.zkAuth.user != "" {
		opts = append(opts, consumer.WithZKDigestAuth(g.zkAuth.user, g.zkAuth.password))
	}
	return opts
}
