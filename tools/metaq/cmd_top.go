package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/spf13/cobra"

	"github.com/metaq-go/metaq/dashboard"
)

type topFlags struct {
	interval time.Duration
	once     bool
	rows     int
}

func newTopCmd(g *globals) *cobra.Command {
	var f topFlags
	cmd := &cobra.Command{
		Use:   "top --zk HOST:PORT [--once]",
		Short: "live terminal view of the cluster: brokers, topic rates, the groups with the most lag",
		Long: `top refreshes a terminal view every --interval: brokers (up or down, puts/s), the busiest
topics (puts/s, consumed bytes/s) and the slowest consumer groups (total lag, stalled partitions).
The numbers are the dashboard's (` + "`metaq dashboard`" + `). Keys: q or Ctrl-C quits, p pauses.
--once (or a stdout that is not a terminal) prints one view in plain text and exits: it reads the
cluster twice, --interval apart, so rates are real.`,
		Example: "  metaq top --zk 127.0.0.1:2181\n  metaq top --zk 127.0.0.1:2181 --once --interval 2s",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(g.zkServers()) == 0 {
				return usageError{fmt.Errorf("top: no ZooKeeper given: pass --zk host:port or set METAQ_ZK")}
			}
			srv, err := dashboard.New(dashboard.Options{ZK: g.zkServers(), ZKRoot: g.zkRoot(), Timeout: g.timeout(),
				Interval: f.interval, History: 60})
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			defer srv.Close()
			if f.once || !isTerminal(cmd.OutOrStdout()) {
				return topOnce(ctx, srv, f, cmd.OutOrStdout())
			}
			_, err = tea.NewProgram(&topModel{ctx: ctx, srv: srv, f: f}, tea.WithAltScreen(), tea.WithContext(ctx)).Run()
			if ctx.Err() != nil {
				return nil
			}
			return err
		},
	}
	cmd.Flags().DurationVar(&f.interval, "interval", 2*time.Second, "refresh interval (and the rate window)")
	cmd.Flags().BoolVar(&f.once, "once", false, "print one view as plain text and exit (no terminal needed)")
	cmd.Flags().IntVar(&f.rows, "rows", 10, "topics and groups shown")
	return cmd
}

// topOnce reads the cluster twice, interval apart, and prints one view.
func topOnce(ctx context.Context, srv *dashboard.Server, f topFlags, w io.Writer) error {
	srv.CollectOnce(ctx)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(f.interval):
	}
	srv.CollectOnce(ctx)
	_, err := io.WriteString(w, renderTop(srv.Snapshot(), f.rows))
	return err
}

// renderTop is the text of one view.
func renderTop(s *dashboard.Snapshot, rows int) string {
	var b strings.Builder
	state := "ok"
	if s.Stale {
		state = "STALE"
	}
	fmt.Fprintf(&b, "metaq top — %s — ZooKeeper %s (%s) — %d brokers, %d topics, %d groups, %d prepared XA\n",
		s.At.Format("15:04:05"), strings.Join(s.ZooKeeper.Servers, ","), state, len(s.Brokers), len(s.Topics), len(s.Groups), len(s.Tx))
	for _, p := range s.Problems {
		fmt.Fprintf(&b, "! %s\n", p)
	}
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nBROKER\tROLE\tSTATUS\tCONNS\tPUTS/S\tDISK\tURI")
	for _, br := range s.Brokers {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%.1f\t%d\t%s\n", br.ID, br.Role, br.Status, br.Connections, br.PutRate, br.DiskBytes, br.URI)
	}
	topics := slices.Clone(s.Topics)
	slices.SortStableFunc(topics, func(a, c dashboard.TopicView) int {
		return cmpDesc(a.PutRate+a.ConsumeRate, c.PutRate+c.ConsumeRate)
	})
	fmt.Fprintln(tw, "\nTOPIC\tPUTS/S\tPUT B/S\tCONSUMED B/S\tMESSAGES\tPARTITIONS")
	for _, t := range topics[:min(rows, len(topics))] {
		fmt.Fprintf(tw, "%s\t%.1f\t%.0f\t%.0f\t%d\t%d\n", t.Topic, t.PutRate, t.PutBytesRate, t.ConsumeRate, t.Messages, t.PubPartitions)
	}
	groups := slices.Clone(s.Groups)
	slices.SortStableFunc(groups, func(a, c dashboard.GroupView) int { return cmpDesc(float64(a.TotalLag), float64(c.TotalLag)) })
	fmt.Fprintln(tw, "\nGROUP (slowest first)\tLAG\tSTALLED\tMEMBERS\tTOPICS")
	for _, gv := range groups[:min(rows, len(groups))] {
		lag := fmt.Sprint(gv.TotalLag)
		if !gv.LagKnown {
			lag += "+"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", gv.Group, lag, gv.Stalled, len(gv.Members), strings.Join(gv.Topics, ","))
	}
	_ = tw.Flush()
	return b.String()
}

func cmpDesc(a, b float64) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}

// topModel is the bubbletea model of `metaq top`.
type topModel struct {
	ctx    context.Context
	srv    *dashboard.Server
	f      topFlags
	paused bool
	text   string
}

type topTick struct{}
type topCollected struct{}

func (m *topModel) collect() tea.Cmd {
	return func() tea.Msg {
		m.srv.CollectOnce(m.ctx)
		return topCollected{}
	}
}

func (m *topModel) Init() tea.Cmd { return m.collect() }

func (m *topModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.KeyMsg:
		switch msg.String() {
		case "q", "ctrl+c", "esc":
			return m, tea.Quit
		case "p":
			m.paused = !m.paused
		}
	case topCollected:
		if !m.paused {
			m.text = renderTop(m.srv.Snapshot(), m.f.rows)
		}
		return m, tea.Tick(m.f.interval, func(time.Time) tea.Msg { return topTick{} })
	case topTick:
		return m, m.collect()
	}
	return m, nil
}

func (m *topModel) View() string {
	if m.text == "" {
		return "metaq top: reading the cluster...\n"
	}
	help := "q quit · p pause"
	if m.paused {
		help += " (paused)"
	}
	return m.text + "\n" + help + "\n"
}
