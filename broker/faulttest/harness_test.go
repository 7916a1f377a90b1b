package faulttest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// metaqBin is the metaq binary TestMain built for this run, with the
// faultinject build tag: its injection points (broker/faultinject_on.go)
// stay inert unless a test sets their environment variable, so one build
// serves every test.
var metaqBin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "metaq-faulttest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "faulttest:", err)
		return 2
	}
	defer os.RemoveAll(dir)
	metaqBin = filepath.Join(dir, "metaq")
	goCmd, err := exec.LookPath("go")
	if err != nil {
		fmt.Fprintln(os.Stderr, "faulttest: the go command is not on PATH; it builds the metaq binary:", err)
		return 2
	}
	args := []string{"build", "-tags", "faultinject", "-o", metaqBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command(goCmd, append(args, "github.com/metaq-go/metaq/tools/metaq")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "faulttest: go build -tags faultinject ./tools/metaq:", err)
		return 2
	}
	return m.Run()
}

const (
	topic = "fault"
	parts = 4
)

// config is one broker's server.ini. Extra lines go into [system].
type config struct {
	dataDir        string
	maxSegmentSize int64    // 0 = 64 KiB
	flushThreshold int      // unflushThreshold; 0 = group commit
	extra          []string // "key=value" lines for [system]
	nofile         int      // > 0: run under `ulimit -n nofile`
	zk             []string // [zookeeper] lines; nil = ZooKeeper disabled
	replication    []string // [replication] lines; nil = no section
	env            []string // "NAME=value" added to the child's environment
}

func (c config) ini() string {
	seg := c.maxSegmentSize
	if seg == 0 {
		seg = 64 << 10
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[system]\nbrokerId=1\nhostName=127.0.0.1\nserverPort=0\ndataPath=%s\n", c.dataDir)
	fmt.Fprintf(&b, "numPartitions=%d\nunflushThreshold=%d\nmaxSegmentSize=%d\n", parts, c.flushThreshold, seg)
	for _, l := range c.extra {
		b.WriteString(l + "\n")
	}
	if c.zk == nil {
		fmt.Fprintf(&b, "\n[zookeeper]\nzk.zkEnable=false\n")
	} else {
		b.WriteString("\n[zookeeper]\n" + strings.Join(c.zk, "\n") + "\n")
	}
	if c.replication != nil {
		b.WriteString("\n[replication]\n" + strings.Join(c.replication, "\n") + "\n")
	}
	fmt.Fprintf(&b, "\n[topic=%s]\n", topic)
	return b.String()
}

// outBuffer keeps the first and the last bytes written to it (a child's
// stderr: the start of a crash report and the latest log lines).
type outBuffer struct {
	mu   sync.Mutex // guards head, tail, cut
	head []byte
	tail []byte
	cut  bool // bytes were dropped between head and tail
}

const outHead, outTail = 16 << 10, 48 << 10

func (l *outBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := min(len(p), outHead-len(l.head)); n > 0 {
		l.head = append(l.head, p[:n]...)
		p = p[n:]
	}
	l.tail = append(l.tail, p...)
	if over := len(l.tail) - outTail; over > 0 {
		l.tail = append(l.tail[:0], l.tail[over:]...)
		l.cut = true
	}
	return len(p), nil
}

func (l *outBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cut {
		return string(l.head) + "\n[…]\n" + string(l.tail)
	}
	return string(l.head) + string(l.tail)
}

// proc is one `metaq broker` child process.
type proc struct {
	t      *testing.T
	cfg    config
	cmd    *exec.Cmd
	pid    int
	addr   string // broker listener
	admin  string // admin HTTP listener
	stderr *outBuffer
	exited chan struct{}
	state  *os.ProcessState // valid after exited
}

var (
	readyRE = regexp.MustCompile(`msg="broker ready" addr=(\S+)`)
	adminRE = regexp.MustCompile(`msg="admin endpoint listening" addr=(\S+)`)
)

// childEnv is the environment without METAQ_* variables, which would
// override the generated server.ini.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "METAQ_") {
			env = append(env, kv)
		}
	}
	return env
}

// startBroker writes cfg as server.ini into a fresh directory and runs the
// broker until it logs its listen address. The child is killed at cleanup.
func startBroker(t *testing.T, cfg config) *proc {
	t.Helper()
	if cfg.dataDir == "" {
		cfg.dataDir = filepath.Join(t.TempDir(), "data")
	}
	ini := filepath.Join(t.TempDir(), "server.ini")
	require.NoError(t, os.WriteFile(ini, []byte(cfg.ini()), 0o644))
	args := []string{"broker", "-c", ini, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"}
	cmd := exec.Command(metaqBin, args...)
	if cfg.nofile > 0 {
		// dash and bash set the soft and the hard limit; exec keeps the pid.
		cmd = exec.Command("sh", append([]string{"-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, cfg.nofile), metaqBin}, args...)...)
	}
	cmd.Env = append(childEnv(), cfg.env...)
	p := &proc{t: t, cfg: cfg, cmd: cmd, stderr: &outBuffer{}, exited: make(chan struct{})}
	errPipe, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	p.pid = cmd.Process.Pid
	scanned := make(chan struct{})
	ready := make(chan [2]string, 1)
	go func() { // owned by the child: ends when its stderr closes
		defer close(scanned)
		var admin string
		sc := bufio.NewScanner(errPipe)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			_, _ = p.stderr.Write([]byte(line + "\n"))
			if m := adminRE.FindStringSubmatch(line); m != nil {
				admin = m[1]
			}
			if m := readyRE.FindStringSubmatch(line); m != nil {
				ready <- [2]string{m[1], admin}
			}
		}
		_, _ = io.Copy(p.stderr, errPipe)
	}()
	go func() {
		<-scanned // Wait closes the pipe: read it to the end first
		_ = cmd.Wait()
		p.state = cmd.ProcessState
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		<-p.exited
		if s := p.stderr.String(); strings.Contains(s, "WARNING: DATA RACE") {
			i := strings.Index(s, "WARNING: DATA RACE")
			t.Errorf("DATA RACE in the broker:\n%s", s[i:min(len(s), i+4000)])
		}
	})
	select {
	case a := <-ready:
		p.addr, p.admin = a[0], a[1]
	case <-p.exited:
		t.Fatalf("broker exited before it was ready (%s)\nserver.ini:\n%s\nstderr:\n%s", p.exitDesc(), cfg.ini(), p.stderr)
	case <-time.After(60 * time.Second):
		t.Fatalf("broker not ready within 60s\nstderr:\n%s", p.stderr)
	}
	return p
}

// restart starts a new broker on the same data directory and configuration.
func (p *proc) restart() *proc {
	p.t.Helper()
	return startBroker(p.t, p.cfg)
}

// partDir is the directory of partition part of the test topic.
func (p *proc) partDir(part int) string {
	return filepath.Join(p.cfg.dataDir, fmt.Sprintf("%s-%d", topic, part))
}

func (p *proc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// exitDesc says how the process ended ("killed by signal: bus error", "exit
// status 1"), or "running".
func (p *proc) exitDesc() string {
	if p.alive() {
		return "running"
	}
	if ws, ok := p.state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return fmt.Sprintf("killed by signal %d (%v)", int(ws.Signal()), ws.Signal())
	}
	return p.state.String()
}

// requireAlive fails the test when the broker process has died.
func (p *proc) requireAlive(after string) {
	p.t.Helper()
	if !p.alive() {
		p.t.Fatalf("CRASHED: the broker process died after %s: %s\n%s", after, p.exitDesc(), p.crashReport())
	}
}

// crashReport is the start of a Go crash report on stderr (the fatal error
// and the failing goroutine), else the stderr tail.
func (p *proc) crashReport() string {
	s := p.stderr.String()
	for _, mark := range []string{"\nunexpected fault address", "\nfatal error:", "\npanic:", "\nSIGBUS", "\nSIGSEGV"} {
		if i := strings.Index(s, mark); i >= 0 {
			return "crash report:" + s[i:min(len(s), i+2500)]
		}
	}
	return "stderr (tail):\n" + p.tail(4000)
}

func (p *proc) tail(n int) string {
	s := p.stderr.String()
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return s
}

func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	require.NoError(p.t, p.cmd.Process.Signal(sig), "signal %v", sig)
}

// kill9 sends SIGKILL and waits for the process to end.
func (p *proc) kill9() {
	p.t.Helper()
	p.signal(syscall.SIGKILL)
	p.waitExit(20 * time.Second)
}

// term sends SIGTERM and waits for a clean exit.
func (p *proc) term() {
	p.t.Helper()
	p.signal(syscall.SIGTERM)
	p.waitExit(60 * time.Second)
	require.True(p.t, p.state.Success(), "graceful shutdown failed: %s\n%s", p.exitDesc(), p.tail(4000))
}

func (p *proc) waitExit(timeout time.Duration) {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(timeout):
		p.t.Fatalf("broker did not exit within %v\n%s", timeout, p.tail(4000))
	}
}

// procState returns the state letter of /proc/<pid>/stat ('R', 'S', 'T', ...).
func (p *proc) procState() byte {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid))
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}

// statusKB returns a "<field>: N kB" value of /proc/<pid>/status, in bytes.
func (p *proc) statusKB(field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(v)
			if len(f) == 0 {
				break
			}
			n, err := strconv.ParseInt(f[0], 10, 64)
			return n << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, p.pid)
}

// health asks the admin port's /healthz: status code and body.
func (p *proc) health() (int, string, error) {
	code, body, err := p.adminGet("/healthz")
	return code, strings.TrimSpace(string(body)), err
}

// adminGet fetches path from the admin port: status code and body.
func (p *proc) adminGet(path string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.admin+path, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// eventually polls cond until it holds or timeout passes; on timeout the
// test fails with cond's last description.
func eventually(t *testing.T, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, desc := cond()
		if ok {
			t.Logf("%s: ok", desc)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, desc)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
