// Package pgtest runs a throw-away PostgreSQL server for tests: Debian's
// binaries (/usr/lib/postgresql/<version>/bin, installed by
// scripts/pg.sh install), initdb into a temp dir, postgres on a free
// 127.0.0.1 port with its unix socket in that dir and
// max_prepared_transactions=20 (two-phase commit). PostgreSQL refuses to
// run as root: as root the temp dir is given to the `postgres` system user
// and initdb/postgres run through `runuser -u postgres --`.
//
// A test package that needs PostgreSQL calls
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
// If PostgreSQL cannot be started, Main prints why and returns 1: the
// package FAILS (in CI too) instead of silently skipping.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is a running PostgreSQL.
type Server struct {
	Dir  string // temp dir: data/ and the unix socket
	Port int
	// DSN connects over TCP as the superuser postgres to database postgres.
	DSN string

	cmd     *exec.Cmd
	waitErr chan error
	logPath string
	stopOne sync.Once
}

// BinDir returns the newest /usr/lib/postgresql/*/bin holding initdb and
// postgres.
func BinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	var ok []string
	for _, d := range dirs {
		if fileExists(filepath.Join(d, "initdb")) && fileExists(filepath.Join(d, "postgres")) {
			ok = append(ok, d)
		}
	}
	if len(ok) == 0 {
		return "", errors.New("pgtest: no PostgreSQL binaries under /usr/lib/postgresql/*/bin (run scripts/pg.sh install)")
	}
	slices.SortFunc(ok, func(a, b string) int { return version(a) - version(b) })
	return ok[len(ok)-1], nil
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// asUser prefixes a command to run as the postgres user when we are root.
func asUser(name string, args ...string) *exec.Cmd {
	if os.Geteuid() == 0 {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
	}
	return exec.Command(name, args...)
}

// Start runs initdb and postgres and waits until it accepts connections.
func Start(ctx context.Context) (*Server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pgtest: running as root needs the postgres system user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	data := filepath.Join(dir, "data")
	out, err := asUser(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--no-sync", "--no-instructions").CombinedOutput()
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pgtest: initdb: %w: %s", err, out)
	}
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s := &Server{Dir: dir, Port: port, logPath: filepath.Join(dir, "postgres.log"), waitErr: make(chan error, 1),
		DSN: fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable", port)}
	logf, err := os.Create(s.logPath)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	defer logf.Close()
	s.cmd = asUser(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+dir,
		"-c", "max_prepared_transactions=20", "-c", "max_connections=100",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pgtest: start postgres: %w", err)
	}
	go func() { s.waitErr <- s.cmd.Wait() }()
	if err := s.waitReady(ctx); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		c, err := pgx.Connect(ctx, s.DSN)
		if err == nil {
			c.Close(ctx)
			return nil
		}
		select {
		case werr := <-s.waitErr:
			s.waitErr <- werr
			return fmt.Errorf("pgtest: postgres exited (%v); log:\n%s", werr, s.tail())
		case <-ctx.Done():
			return fmt.Errorf("pgtest: postgres not ready on port %d: %w (last: %v); log:\n%s", s.Port, ctx.Err(), err, s.tail())
		case <-time.After(50 * time.Millisecond): // poll interval
		}
	}
}

func (s *Server) tail() string {
	b, _ := os.ReadFile(s.logPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Stop shuts postgres down (fast: SIGINT to the postmaster, SIGKILL to
// the process group after 10 s) and removes its directory. Idempotent.
func (s *Server) Stop() {
	s.stopOne.Do(func() {
		if s.cmd != nil && s.cmd.Process != nil {
			if pid := s.postmasterPID(); pid > 0 {
				_ = syscall.Kill(pid, syscall.SIGINT)
			} else {
				_ = s.cmd.Process.Signal(syscall.SIGINT)
			}
			select {
			case <-s.waitErr:
			case <-time.After(10 * time.Second):
				_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
				<-s.waitErr
			}
		}
		os.RemoveAll(s.Dir)
	})
}

// postmasterPID reads the first line of data/postmaster.pid.
func (s *Server) postmasterPID() int {
	b, err := os.ReadFile(filepath.Join(s.Dir, "data", "postmaster.pid"))
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	return n
}

// CreateDB creates a database and returns its DSN.
func (s *Server) CreateDB(ctx context.Context, name string) (string, error) {
	c, err := pgx.Connect(ctx, s.DSN)
	if err != nil {
		return "", err
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("pgtest: create database %s: %w", name, err)
	}
	return strings.Replace(s.DSN, "dbname=postgres", "dbname="+name, 1), nil
}

var (
	sharedMu sync.Mutex
	shared   *Server
	dbSeq    int
)

// Main starts the package's shared server, runs the tests and stops it.
// It returns 1 without running the tests when PostgreSQL cannot start.
func Main(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	srv, err := Start(ctx)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: cannot start PostgreSQL, failing the package: %v\n", err)
		return 1
	}
	sharedMu.Lock()
	shared = srv
	sharedMu.Unlock()
	code := m.Run()
	srv.Stop()
	return code
}

// Shared returns the server Main started.
func Shared(tb testing.TB) *Server {
	tb.Helper()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared == nil {
		tb.Fatal("pgtest: no shared server: call os.Exit(pgtest.Main(m)) from TestMain")
	}
	return shared
}

// NewDB creates a fresh database on the shared server and returns its DSN.
func NewDB(tb testing.TB) string {
	tb.Helper()
	s := Shared(tb)
	sharedMu.Lock()
	dbSeq++
	name := fmt.Sprintf("t%d_%d", os.Getpid(), dbSeq)
	sharedMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dsn, err := s.CreateDB(ctx, name)
	if err != nil {
		tb.Fatal(err)
	}
	return dsn
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
