// Package zktest runs real ZooKeeper servers for tests: a standalone server or
// a 3-node ensemble on free 127.0.0.1 ports with temp data dirs and a short
// tickTime, the four-letter-word commands, real session expiry, and a TCP fault
// proxy that can drop, freeze or cut connections.
//
// ZooKeeper comes from the Debian package (`apt-get install zookeeper`, jars in
// /usr/share/java) or from the jars named by $METAQ_ZK_CLASSPATH. The repo's
// scripts/zk.sh installs the package when it is missing. Tests that need
// ZooKeeper fail, never skip, when it cannot be started: use Main in TestMain.
package zktest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultTickTime is the tickTime of test servers: short so that session
// timeouts of a few hundred milliseconds are allowed (min is 2 ticks).
const DefaultTickTime = 100 * time.Millisecond

// ErrNoZooKeeper reports that no ZooKeeper installation was found.
var ErrNoZooKeeper = errors.New("zktest: ZooKeeper jars not found; run scripts/zk.sh install (apt-get install zookeeper) or set METAQ_ZK_CLASSPATH")

// Options tune a test server.
type Options struct {
	TickTime time.Duration // default DefaultTickTime
	// ExtraConfig lines are appended to zoo.cfg (e.g. "authProvider.1=...").
	ExtraConfig []string
	// JVMArgs are extra java flags (system properties such as
	// -Dzookeeper.DigestAuthenticationProvider.superDigest=...).
	JVMArgs []string
}

// Server is one ZooKeeper process on 127.0.0.1.
type Server struct {
	ID         int    // myid in an ensemble, 0 when standalone
	Addr       string // client address host:port
	Dir        string // config and data directory
	configPath string
	opts       Options
	quorum     bool

	mu   sync.Mutex // guards cmd and done
	cmd  *exec.Cmd
	done chan struct{}
}

// classpath locates the ZooKeeper jars.
func classpath() (string, error) {
	if cp := os.Getenv("METAQ_ZK_CLASSPATH"); cp != "" {
		return cp, nil
	}
	for _, dir := range []string{"/usr/share/java", "/usr/share/zookeeper/lib", "/opt/zookeeper/lib"} {
		if _, err := os.Stat(filepath.Join(dir, "zookeeper.jar")); err != nil {
			continue
		}
		jars := []string{"zookeeper.jar", "zookeeper-jute.jar", "netty-handler.jar", "netty-common.jar",
			"netty-buffer.jar", "netty-transport.jar", "netty-codec.jar", "netty-resolver.jar",
			"netty-transport-native-epoll.jar", "netty-transport-native-unix-common.jar",
			"slf4j-api.jar", "slf4j-simple.jar"}
		var parts []string
		for _, j := range jars {
			if _, err := os.Stat(filepath.Join(dir, j)); err == nil {
				parts = append(parts, filepath.Join(dir, j))
			}
		}
		return strings.Join(parts, ":"), nil
	}
	if _, err := exec.LookPath("java"); err != nil {
		return "", fmt.Errorf("%w (java is missing too)", ErrNoZooKeeper)
	}
	return "", ErrNoZooKeeper
}

// FreePort returns a currently free TCP port on 127.0.0.1.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (o Options) withDefaults() Options {
	if o.TickTime <= 0 {
		o.TickTime = DefaultTickTime
	}
	return o
}

func writeConfig(dir string, clientPort int, o Options, peers []string) (string, error) {
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return "", err
	}
	lines := []string{
		"tickTime=" + strconv.Itoa(int(o.TickTime/time.Millisecond)),
		// Generous in ticks: a JVM starved by parallel race-enabled tests must
		// still manage to sync with a new leader (2 s was not always enough).
		"initLimit=100", "syncLimit=50",
		"dataDir=" + data,
		"clientPort=" + strconv.Itoa(clientPort),
		"clientPortAddress=127.0.0.1",
		"admin.enableServer=false",
		"4lw.commands.whitelist=*",
		"maxClientCnxns=0",
		"minSessionTimeout=" + strconv.Itoa(int(2*o.TickTime/time.Millisecond)),
		"maxSessionTimeout=120000",
		"autopurge.purgeInterval=0",
		"preAllocSize=1024",
		"forceSync=no",
	}
	lines = append(lines, peers...)
	lines = append(lines, o.ExtraConfig...)
	cfg := filepath.Join(dir, "zoo.cfg")
	return cfg, os.WriteFile(cfg, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}

// StartServer starts a standalone server in a fresh temp dir and waits until it serves.
func StartServer(ctx context.Context, o Options) (*Server, error) {
	o = o.withDefaults()
	dir, err := os.MkdirTemp("", "zktest-")
	if err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	cfg, err := writeConfig(dir, port, o, nil)
	if err != nil {
		return nil, err
	}
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Dir: dir, configPath: cfg, opts: o}
	if err := s.Start(ctx); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// Start (re)starts the server process with its existing config and data and
// waits until it serves requests (standalone) or has joined a quorum.
func (s *Server) Start(ctx context.Context) error {
	cp, err := classpath()
	if err != nil {
		return err
	}
	main := "org.apache.zookeeper.server.ZooKeeperServerMain"
	if s.quorum {
		main = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
	}
	args := []string{"-Xmx192m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto",
		"-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-Dorg.slf4j.simpleLogger.showDateTime=true",
		"-Dzookeeper.jmx.log4j.disable=true", "-Dzookeeper.admin.enableServer=false"}
	args = append(args, s.opts.JVMArgs...)
	args = append(args, "-cp", cp, main, s.configPath)
	logf, err := os.OpenFile(filepath.Join(s.Dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command("java", args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("zktest: start java: %w", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	if s.quorum {
		return nil // the ensemble waits for a quorum
	}
	return s.waitServing(ctx, done)
}

func (s *Server) waitServing(ctx context.Context, done <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		if mode, err := s.Mode(); err == nil && mode != "" {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("zktest: ZooKeeper %s exited during start-up; see %s", s.Addr, filepath.Join(s.Dir, "server.log"))
		case <-ctx.Done():
			return fmt.Errorf("zktest: ZooKeeper %s not serving: %w; see %s", s.Addr, ctx.Err(), filepath.Join(s.Dir, "server.log"))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Mode returns "standalone", "leader" or "follower" once the server serves
// requests, and "" with an error otherwise.
func (s *Server) Mode() (string, error) {
	out, err := FourLetter(s.Addr, "srvr")
	if err != nil {
		return "", err
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if m, ok := strings.CutPrefix(sc.Text(), "Mode: "); ok {
			return strings.TrimSpace(m), nil
		}
	}
	return "", fmt.Errorf("zktest: %s not serving: %q", s.Addr, strings.TrimSpace(out))
}

// Kill stops the process with SIGKILL and waits for it to exit. Data stays.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
}

// Running reports whether the process is alive.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// Stop kills the server and removes its directory.
func (s *Server) Stop() {
	s.Kill()
	os.RemoveAll(s.Dir)
}

// FourLetter sends a four-letter-word command (ruok, srvr, stat, cons, wchp,
// wchc, wchs, dump, mntr, ...) to addr and returns the answer.
func FourLetter(addr, cmd string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(cmd)); err != nil {
		return "", err
	}
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			if b.Len() > 0 || errors.Is(err, net.ErrClosed) || err.Error() == "EOF" {
				return b.String(), nil
			}
			return b.String(), err
		}
	}
}

// FourLetter sends cmd to this server.
func (s *Server) FourLetter(cmd string) (string, error) { return FourLetter(s.Addr, cmd) }

// LogTail returns the last n lines of the server's log (warnings and errors).
func (s *Server) LogTail(n int) string {
	b, err := os.ReadFile(filepath.Join(s.Dir, "server.log"))
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
