package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/internal/clusterview"
	"github.com/metaq-go/metaq/zkrecipes"
)

// groupExport is the file of `metaq groups export` / `import`.
type groupExport struct {
	Group      string           `json:"group"`
	ZKRoot     string           `json:"zk_root"`
	ExportedAt time.Time        `json:"exported_at"`
	Offsets    []exportedOffset `json:"offsets"`
}

type exportedOffset struct {
	Topic     string `json:"topic"`
	Partition string `json:"partition"` // <brokerId>-<partition>
	Offset    int64  `json:"offset"`
	MsgID     int64  `json:"msg_id"`
}

func newGroupsExportCmd(g *globals) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "export GROUP [-f FILE]",
		Short: "write a group's committed offsets as JSON (to stdout or -f FILE), for backup or `groups import`",
		Example: `  metaq groups export g1 --zk 127.0.0.1:2181 -f g1-offsets.json
  metaq groups export g1 --zk 127.0.0.1:2181 > g1-offsets.json`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			ex, err := withZK(cmd.Context(), g, 3, func(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths) (groupExport, error) {
				return exportGroup(ctx, s, p, args[0])
			})
			if err != nil {
				return err
			}
			if file == "" || file == "-" {
				return printJSON(cmd.OutOrStdout(), ex)
			}
			return writeExport(file, ex)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "write to this file instead of stdout")
	return cmd
}

func exportGroup(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths, group string) (groupExport, error) {
	ex := groupExport{Group: group, ZKRoot: p.Root, ExportedAt: time.Now().UTC().Truncate(time.Second), Offsets: []exportedOffset{}}
	if ok, _, err := s.Exists(ctx, p.Group(group)); err != nil || !ok {
		if err == nil {
			err = clusterview.ErrNoGroup(p, group)
		}
		return ex, err
	}
	lags, err := coordinator.GroupLag(ctx, s, p, group, nil)
	if err != nil {
		return ex, err
	}
	for _, l := range lags {
		if l.HasOffset {
			ex.Offsets = append(ex.Offsets, exportedOffset{Topic: l.Topic, Partition: l.Partition.String(),
				Offset: l.Committed.Offset, MsgID: l.Committed.MsgID})
		}
	}
	return ex, nil
}

// writeExport writes the file atomically (temp file + rename).
func writeExport(path string, ex groupExport) error {
	tmp, err := os.CreateTemp(dirOf(path), ".metaq-export-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := printJSON(tmp, ex); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func dirOf(path string) string {
	for i := len(path) - 1; i >= 0; i-- {
		if path[i] == '/' {
			return path[:i+1]
		}
	}
	return "."
}

func newGroupsImportCmd(g *globals) *cobra.Command {
	var file string
	var execute bool
	cmd := &cobra.Command{
		Use:   "import GROUP -f FILE [--execute]",
		Short: "set a group's offsets from a `groups export` file; a dry run unless --execute; refused while the group has live members",
		Long: `import reads a file written by ` + "`metaq groups export`" + ` (possibly of another group or cluster) and sets
GROUP's committed offsets to the file's values, printing current -> new. Partitions not in the file
are left alone. Nothing is written without --execute, which is refused while GROUP has live members.`,
		Example: `  metaq groups import g1 --zk 127.0.0.1:2181 -f g1-offsets.json
  metaq groups import g1 --zk 127.0.0.1:2181 -f g1-offsets.json --execute`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return usageError{errors.New("import: -f FILE is required (`-f -` reads stdin)")}
			}
			ex, err := readExport(cmd.InOrStdin(), file)
			if err != nil {
				return err
			}
			return runOffsetChange(cmd, g, args[0], execute, func(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths) ([]clusterview.OffsetChange, error) {
				return planImport(ctx, s, p, args[0], ex)
			})
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "export file to read (- for stdin)")
	cmd.Flags().BoolVar(&execute, "execute", false, "write the offsets (default: dry run, print only)")
	return cmd
}

func readExport(stdin io.Reader, path string) (groupExport, error) {
	var ex groupExport
	in := stdin
	if path != "-" {
		fh, err := os.Open(path)
		if err != nil {
			return ex, err
		}
		defer fh.Close()
		in = fh
	}
	dec := json.NewDecoder(in)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ex); err != nil {
		return ex, usageError{fmt.Errorf("import: %s is not a `metaq groups export` file: %w", path, err)}
	}
	seen := map[coordinator.TopicPartition]bool{}
	for _, o := range ex.Offsets {
		b, pn, err := coordinator.ParsePartitionName(o.Partition)
		if err != nil || o.Topic == "" || o.Offset < 0 {
			return ex, usageError{fmt.Errorf("import: %s: bad entry %+v (want topic, partition <brokerId>-<partition>, offset >= 0)", path, o)}
		}
		tp := coordinator.TopicPartition{Topic: o.Topic, Partition: coordinator.Partition{BrokerID: b, Partition: pn}}
		if seen[tp] {
			return ex, usageError{fmt.Errorf("import: %s: %s appears twice", path, tp)}
		}
		seen[tp] = true
	}
	return ex, nil
}

func planImport(ctx context.Context, s *zkrecipes.Session, p coordinator.Paths, group string, ex groupExport) ([]clusterview.OffsetChange, error) {
	changes := make([]clusterview.OffsetChange, 0, len(ex.Offsets))
	for _, o := range ex.Offsets {
		b, pn, _ := coordinator.ParsePartitionName(o.Partition)
		tp := coordinator.TopicPartition{Topic: o.Topic, Partition: coordinator.Partition{BrokerID: b, Partition: pn}}
		c, err := clusterview.ReadCurrent(ctx, s, p, group, tp)
		if err != nil {
			return nil, err
		}
		c.New, c.NewMsgID = o.Offset, o.MsgID
		if ex.Group != group {
			c.Note = "from group " + ex.Group
		}
		changes = append(changes, c)
	}
	slices.SortFunc(changes, func(a, b clusterview.OffsetChange) int { return a.TopicPartition().Compare(b.TopicPartition()) })
	return changes, nil
}
