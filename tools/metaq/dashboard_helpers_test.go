package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// childBroker is a broker running as a child process (the test binary
// running `metaq broker`), so that a test can kill it like an operator's
// kill -9: its ZooKeeper registration stays until the session times out.
type childBroker struct {
	addr, admin string
	tokenFile   string // the admin token the child broker requires
	cmd         *exec.Cmd
	exited      chan struct{}
	mu          sync.Mutex // guards log
	log         strings.Builder
}

var (
	childReadyRE = regexp.MustCompile(`msg="broker ready" addr=(\S+)`)
	childAdminRE = regexp.MustCompile(`msg="admin endpoint listening" addr=(\S+)`)
)

// startChildBroker runs broker id with the given topics (parts partitions
// each) registered under zkAddr/root, with an admin endpoint; killed at cleanup.
func startChildBroker(t *testing.T, id int, zkAddr, root string, sessionMs, parts int, topics ...string) *childBroker {
	t.Helper()
	var ini strings.Builder
	fmt.Fprintf(&ini, "[system]\nbrokerId=%d\nhostName=127.0.0.1\nserverPort=0\ndataPath=%s\nnumPartitions=%d\n",
		id, filepath.Join(t.TempDir(), "data"), parts)
	fmt.Fprintf(&ini, "\n[zookeeper]\nzk.zkEnable=true\nzk.zkConnect=%s\nzk.zkRoot=%s\nzk.zkSessionTimeoutMs=%d\n", zkAddr, root, sessionMs)
	tokenFile := writeToken(t) // the admin port's mutating endpoints need it
	fmt.Fprintf(&ini, "\n[security]\nadminTokenFile=%s\n", tokenFile)
	for _, tp := range topics {
		fmt.Fprintf(&ini, "\n[topic=%s]\n", tp)
	}
	path := filepath.Join(t.TempDir(), "server.ini")
	if err := os.WriteFile(path, []byte(ini.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cb := &childBroker{exited: make(chan struct{}), tokenFile: tokenFile}
	cb.cmd = exec.Command(os.Args[0], "broker", "-c", path, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0")
	cb.cmd.Env = append(os.Environ(), runMainEnv+"=1")
	stderr, err := cb.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cb.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan [2]string, 1)
	go func() { // owned by the child: ends when its stderr closes
		defer close(cb.exited)
		var admin string
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			cb.mu.Lock()
			cb.log.WriteString(line + "\n")
			cb.mu.Unlock()
			if m := childAdminRE.FindStringSubmatch(line); m != nil {
				admin = m[1]
			}
			if m := childReadyRE.FindStringSubmatch(line); m != nil {
				ready <- [2]string{m[1], admin}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		_ = cb.cmd.Wait()
	}()
	t.Cleanup(cb.kill)
	select {
	case a := <-ready:
		cb.addr, cb.admin = a[0], a[1]
	case <-cb.exited:
		t.Fatalf("broker %d exited before it was ready:\n%s", id, cb.logText())
	case <-time.After(60 * time.Second):
		t.Fatalf("broker %d not ready within 60s:\n%s", id, cb.logText())
	}
	return cb
}

func (cb *childBroker) logText() string {
	cb.mu.Lock()
	defer cb.mu.Unlock()
	return cb.log.String()
}

// kill sends SIGKILL and waits for the child to be gone.
func (cb *childBroker) kill() {
	_ = cb.cmd.Process.Signal(syscall.SIGKILL)
	<-cb.exited
}

// chromiumPath finds Debian's chromium (scripts/test.sh installs it).
func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// newBrowser starts headless Chromium for the test, or skips the test when
// there is none or it cannot start here.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath()
	if path == "" {
		t.Skip("no chromium on PATH: scripts/test.sh installs Debian's chromium (apt-get install -y chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path),
		chromedp.NoSandbox, chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1360, 900),
		chromedp.UserDataDir(t.TempDir()))
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); acancel() })
	// The first Run starts the browser; its context must be the tab's own
	// (a timeout here would close the browser when it expires).
	if err := chromedp.Do(ctx); err != nil {
		if os.Getenv("CI") != "" || os.Getenv("METAQ_REQUIRE_BROWSER") != "" {
			t.Fatalf("chromium %s cannot start: %v", path, err)
		}
		t.Skipf("chromium %s cannot start here: %v", path, err)
	}
	return ctx
}
