package zktest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Ensemble is a quorum of ZooKeeper servers on 127.0.0.1.
type Ensemble struct {
	Servers []*Server
	dir     string
}

// StartEnsemble starts n servers (3 for a real quorum) and waits until all serve.
func StartEnsemble(ctx context.Context, n int, o Options) (*Ensemble, error) {
	o = o.withDefaults()
	dir, err := os.MkdirTemp("", "zktest-ensemble-")
	if err != nil {
		return nil, err
	}
	e := &Ensemble{dir: dir}
	ports := make([]int, 3*n)
	for i := range ports {
		if ports[i], err = FreePort(); err != nil {
			return nil, err
		}
	}
	var peers []string
	for i := 0; i < n; i++ {
		peers = append(peers, fmt.Sprintf("server.%d=127.0.0.1:%d:%d", i+1, ports[3*i+1], ports[3*i+2]))
	}
	for i := 0; i < n; i++ {
		sdir := filepath.Join(dir, strconv.Itoa(i+1))
		cfg, err := writeConfig(sdir, ports[3*i], o, peers)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(sdir, "data", "myid"), []byte(strconv.Itoa(i+1)+"\n"), 0o644); err != nil {
			return nil, err
		}
		e.Servers = append(e.Servers, &Server{ID: i + 1, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[3*i])),
			Dir: sdir, configPath: cfg, opts: o, quorum: true})
	}
	for _, s := range e.Servers {
		if err := s.Start(ctx); err != nil {
			e.Stop()
			return nil, err
		}
	}
	if err := e.WaitServing(ctx, n); err != nil {
		e.Stop()
		return nil, err
	}
	return e, nil
}

// Addrs returns the client addresses of all servers.
func (e *Ensemble) Addrs() []string {
	out := make([]string, len(e.Servers))
	for i, s := range e.Servers {
		out[i] = s.Addr
	}
	return out
}

// ConnectString returns the comma-joined client addresses.
func (e *Ensemble) ConnectString() string { return strings.Join(e.Addrs(), ",") }

// Leader returns the server currently in leader mode, or nil.
func (e *Ensemble) Leader() *Server {
	for _, s := range e.Servers {
		if m, err := s.Mode(); err == nil && m == "leader" {
			return s
		}
	}
	return nil
}

// WaitServing waits until at least want running servers serve requests and one is leader.
func (e *Ensemble) WaitServing(ctx context.Context, want int) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		serving, leader := 0, false
		for _, s := range e.Servers {
			if m, err := s.Mode(); err == nil {
				serving++
				leader = leader || m == "leader"
			}
		}
		if serving >= want && leader {
			return nil
		}
		select {
		case <-ctx.Done():
			var logs strings.Builder
			for _, s := range e.Servers {
				fmt.Fprintf(&logs, "\n--- server %d (%s, running=%v):\n%s", s.ID, s.Addr, s.Running(), s.LogTail(8))
			}
			return fmt.Errorf("zktest: ensemble has %d/%d serving servers (leader=%v): %w%s", serving, want, leader, ctx.Err(), logs.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop kills every server and removes the directories.
func (e *Ensemble) Stop() {
	for _, s := range e.Servers {
		s.Kill()
	}
	os.RemoveAll(e.dir)
}
