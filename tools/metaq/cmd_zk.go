package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/zkrecipes"
)

func newZKCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "zk",
		Short: "inspect the cluster's ZooKeeper nodes",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{errors.New("zk: missing subcommand: use `metaq zk tree [path]` or `metaq zk secure`")}
		},
	}
	cmd.AddCommand(newZKTreeCmd(g), newZKSecureCmd(g))
	return cmd
}

// newZKSecureCmd tightens the ACLs of nodes a cluster or group created before
// it had a ZooKeeper identity (docs/security-zookeeper.md). Brokers with
// zk.zkAuth do it for the cluster's nodes at start; groups need their own
// identity, hence --group.
func newZKSecureCmd(g *globals) *cobra.Command {
	var group string
	cmd := &cobra.Command{
		Use:   "secure [--group NAME]",
		Short: "restrict world-writable metaq nodes to the identity of --zk-auth-file / METAQ_ZK_AUTH (the cluster's, or with --group that group's)",
		Example: "  metaq zk secure --zk 127.0.0.1:2181 --zk-auth-file /etc/metaq/zk-cluster.auth\n" +
			"  METAQ_ZK_AUTH_FILE=/etc/metaq/zk-billing.auth metaq zk secure --group billing --zk 127.0.0.1:2181",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if g.zkAuth.user == "" {
				return usageError{errors.New("zk secure: needs a ZooKeeper identity: pass --zk-auth-file FILE (user:password, mode 0600) or set METAQ_ZK_AUTH")}
			}
			n, err := withZK(cmd.Context(), g, 10, func(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths) (int, error) {
				if group == "" {
					return coordinator.SecureCluster(ctx, s, p)
				}
				if err := coordinator.CheckIdentity(ctx, s, p.Group(group)); err != nil {
					return 0, err
				}
				return coordinator.Secure(ctx, s, p, p.Group(group), true)
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "secured %d node(s) as ZooKeeper user %s\n", n, g.zkAuth.user)
			return nil
		},
	}
	cmd.Flags().StringVar(&group, "group", "", "secure this consumer group's nodes (as the group's identity) instead of the cluster's")
	return cmd
}

// zkNode is one node of `metaq zk tree`.
type zkNode struct {
	Path      string    `json:"path"`
	Data      string    `json:"data"`
	Ephemeral bool      `json:"ephemeral"`
	Owner     string    `json:"ephemeral_owner,omitempty"` // session id, hex
	Children  []*zkNode `json:"children,omitempty"`
}

func newZKTreeCmd(g *globals) *cobra.Command {
	var depth, width int
	cmd := &cobra.Command{
		Use:   "tree [path]",
		Short: "print the ZooKeeper tree under path (default: the cluster root --zk-root) with data and [ephemeral] markers",
		Example: "  metaq zk tree --zk 127.0.0.1:2181\n" +
			"  metaq zk tree /meta/brokers/ids --zk 127.0.0.1:2181 -o json",
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			root := g.paths().Root
			if len(args) == 1 {
				root = args[0]
			}
			if !strings.HasPrefix(root, "/") {
				return usageError{fmt.Errorf("zk path %q must be absolute (start with /)", root)}
			}
			if root != "/" {
				root = strings.TrimRight(root, "/")
			}
			tree, err := withZK(cmd.Context(), g, 1, func(ctx context.Context, s *zkrecipes.Session, _ coordinator.Paths) (*zkNode, error) {
				return readTree(ctx, s, root, depth)
			})
			if errors.Is(err, zkrecipes.ErrNoNode) {
				return fmt.Errorf("no ZooKeeper node %s: check --zk-root (now %s), or look at the top with `metaq zk tree /`", root, g.paths().Root)
			}
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if g.output() == "json" {
				return printJSON(w, tree)
			}
			printTree(w, tree, "", "", width, true)
			return nil
		},
	}
	cmd.Flags().IntVar(&depth, "depth", 0, "levels below path to show (0 = all)")
	cmd.Flags().IntVar(&width, "width", 60, "characters of node data to show in the table (0 = all)")
	return cmd
}

// readTree reads the node at p and, up to depth levels (0 = unlimited), its descendants.
func readTree(ctx context.Context, s *zkrecipes.Session, p string, depth int) (*zkNode, error) {
	data, st, err := s.Get(ctx, p)
	if err != nil {
		return nil, err
	}
	n := &zkNode{Path: p, Data: string(data), Ephemeral: st.EphemeralOwner != 0}
	if n.Ephemeral {
		n.Owner = fmt.Sprintf("0x%x", st.EphemeralOwner)
	}
	if st.NumChildren == 0 || depth == 1 {
		return n, nil
	}
	kids, _, err := s.Children(ctx, p)
	if errors.Is(err, zkrecipes.ErrNoNode) {
		return n, nil // deleted meanwhile
	}
	if err != nil {
		return nil, err
	}
	sort.Strings(kids)
	for _, k := range kids {
		c, err := readTree(ctx, s, path.Join(p, k), max(depth-1, 0))
		if errors.Is(err, zkrecipes.ErrNoNode) {
			continue
		}
		if err != nil {
			return nil, err
		}
		n.Children = append(n.Children, c)
	}
	return n, nil
}

// printTree prints n as an indented tree: name, ` = "data"` and [ephemeral].
func printTree(w io.Writer, n *zkNode, prefix, branch string, width int, top bool) {
	name := path.Base(n.Path)
	if top {
		name = n.Path
	}
	line := prefix + branch + name
	if n.Data != "" {
		line += " = " + shortData(n.Data, width)
	}
	if n.Ephemeral {
		line += " [ephemeral]"
	}
	fmt.Fprintln(w, line)
	childPrefix := prefix
	switch branch {
	case "├── ":
		childPrefix += "│   "
	case "└── ":
		childPrefix += "    "
	}
	for i, c := range n.Children {
		b := "├── "
		if i == len(n.Children)-1 {
			b = "└── "
		}
		printTree(w, c, childPrefix, b, width, false)
	}
}

// shortData quotes data (escaping control and invalid bytes) and cuts it to width runes.
func shortData(s string, width int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if width > 0 && utf8.RuneCountInString(s) > width {
		r := []rune(s)
		return strconv.Quote(string(r[:width])) + "…"
	}
	return strconv.Quote(s)
}
