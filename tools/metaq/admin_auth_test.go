package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/broker/config"
	"github.com/metaq-go/metaq/internal/tlsconf"
	"github.com/metaq-go/metaq/internal/tlsconf/tlstest"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

// writeAdminToken writes a token file readable by its owner only.
func writeAdminToken(t *testing.T) (file, token string) {
	t.Helper()
	token = "s3cret-admin-token-0123456789abcdef"
	file = filepath.Join(t.TempDir(), "admin.token")
	require.NoError(t, os.WriteFile(file, []byte(token+"\n"), 0o600))
	return file, token
}

func adminPost(t *testing.T, client *http.Client, url, token string) (int, string) {
	t.Helper()
	return adminDo(t, client, http.MethodPost, url, token)
}

func adminDo(t *testing.T, client *http.Client, method, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestAdminMutatingEndpointsNeedToken(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Partitions: 1})
	file, token := writeAdminToken(t)
	a, err := startAdminWith("127.0.0.1:0", b, adminSecurity{TokenFile: file}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(func() { a.Close(context.Background()) })
	url := "http://" + a.Addr() + "/partitions/t/0/close"
	opsPut(t, b.Addr(), "t", 0, 1, "x") // creates the partition
	require.Len(t, b.Snapshot().Partitions, 1)

	code, body := adminPost(t, http.DefaultClient, url, "")
	require.Equal(t, http.StatusUnauthorized, code)
	require.Contains(t, body, "Authorization: Bearer")
	code, _ = adminPost(t, http.DefaultClient, url, "wrong-token-wrong-token")
	require.Equal(t, http.StatusUnauthorized, code)
	require.False(t, b.Snapshot().Partitions[0].Closed, "a refused request changes nothing")
	code, _ = adminPost(t, http.DefaultClient, url, token)
	require.Equal(t, http.StatusOK, code)
	require.True(t, b.Snapshot().Partitions[0].Closed)

	// Read-only endpoints stay open.
	resp, err := http.Get("http://" + a.Addr() + "/metrics")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	st, _ := healthz(t, a.Addr())
	require.Equal(t, http.StatusOK, st)

	// The closed set is bounded.
	for i := 1; i < broker.MaxClosedPartitions; i++ {
		require.NoError(t, b.ClosePartition("t", i))
	}
	code, body = adminPost(t, http.DefaultClient, "http://"+a.Addr()+"/partitions/t/99999/close", token)
	require.Equal(t, http.StatusConflict, code)
	require.Contains(t, body, "open some first")
	code, _ = adminPost(t, http.DefaultClient, "http://"+a.Addr()+"/partitions/t/0/close", token)
	require.Equal(t, http.StatusOK, code, "closing a closed partition again is fine")
}

// The Go profiles are behind the admin token: they reveal internals and a
// CPU profile costs the broker CPU.
func TestAdminProfilesNeedToken(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Partitions: 1})
	file, token := writeAdminToken(t)
	a, err := startAdminWith("127.0.0.1:0", b, adminSecurity{TokenFile: file}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(func() { a.Close(context.Background()) })
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/profile?seconds=1"} {
		url := "http://" + a.Addr() + path
		code, _ := adminDo(t, http.DefaultClient, http.MethodGet, url, "")
		require.Equal(t, http.StatusUnauthorized, code, path)
		code, _ = adminDo(t, http.DefaultClient, http.MethodGet, url, "wrong-token-wrong-token")
		require.Equal(t, http.StatusUnauthorized, code, path)
		code, body := adminDo(t, http.DefaultClient, http.MethodGet, url, token)
		require.Equal(t, http.StatusOK, code, path)
		require.NotEmpty(t, body, path)
	}
}

func TestAdminWithoutTokenRefusesMutations(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Partitions: 1})
	a, err := startAdmin("127.0.0.1:0", b, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(func() { a.Close(context.Background()) })
	code, body := adminPost(t, http.DefaultClient, "http://"+a.Addr()+"/partitions/t/0/close", "anything-anything")
	require.Equal(t, http.StatusUnauthorized, code)
	require.Contains(t, body, "set [security] adminTokenFile")
}

func TestAdminTokenFileMustBePrivate(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Partitions: 1})
	file, _ := writeAdminToken(t)
	for _, mode := range []os.FileMode{0o644, 0o640} { // world- or group-readable
		require.NoError(t, os.Chmod(file, mode))
		_, err := startAdminWith("127.0.0.1:0", b, adminSecurity{TokenFile: file}, slog.New(slog.DiscardHandler))
		require.ErrorContains(t, err, "chmod 600")
		require.NotContains(t, err.Error(), "s3cret", "the token never appears in the error")
	}
	require.NoError(t, os.Chmod(file, 0o600))
	require.NoError(t, os.WriteFile(file, []byte("short"), 0o600))
	_, err := startAdminWith("127.0.0.1:0", b, adminSecurity{TokenFile: file}, slog.New(slog.DiscardHandler))
	require.ErrorContains(t, err, "shorter than 16")
}

func TestAdminDefaultBindIsLoopback(t *testing.T) {
	cfg, err := config.Parse([]byte("[system]\nbrokerId=1\nadminPort=9001\n[zookeeper]\nzk.zkEnable=false\n"), "ini", config.WithoutEnv())
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:9001", adminAddr("", cfg.Broker().AdminHost, cfg.Broker().AdminPort))
	require.Equal(t, "0.0.0.0:9001", adminAddr("", "0.0.0.0", 9001))
	require.Equal(t, "", adminAddr("", "127.0.0.1", 0))
}

func TestAdminTLSAndAdminCertificate(t *testing.T) {
	ca := tlstest.NewCA(t, "ca")
	cert, key := ca.Issue(t, "broker")
	srv, err := tlsconf.NewServer(cert, key, ca.CertFile)
	require.NoError(t, err)
	b := brokertest.Start(t, brokertest.Options{Partitions: 1})
	a, err := startAdminWith("127.0.0.1:0", b, adminSecurity{TLS: srv, IsAdmin: func(p string) bool { return p == "root" }}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(func() { a.Close(context.Background()) })
	pool := ca.Pool()
	client := func(cn string) *http.Client {
		cfg := &tls.Config{RootCAs: pool}
		if cn != "" {
			c, k := ca.Issue(t, cn)
			kp, err := tls.LoadX509KeyPair(c, k)
			require.NoError(t, err)
			cfg.Certificates = []tls.Certificate{kp}
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
	}
	url := "https://" + a.Addr() + "/partitions/t/0/close"
	code, _ := adminPost(t, client("alice"), url, "")
	require.Equal(t, http.StatusUnauthorized, code, "not an admin principal")
	code, _ = adminPost(t, client("root"), url, "")
	require.Equal(t, http.StatusOK, code)
	resp, err := client("").Get("https://" + a.Addr() + "/healthz")
	require.NoError(t, err, "read-only endpoints need no certificate")
	resp.Body.Close()
	if resp, err := http.Get("http://" + a.Addr() + "/healthz"); err == nil {
		resp.Body.Close()
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, "plain HTTP on the TLS admin port")
	}
}

// TestBrokerCommandSIGHUPReloadsTLS runs `metaq broker` with TLS, rotates
// the certificate files and sends SIGHUP: new handshakes get the new
// certificate, the connection made before keeps working.
func TestBrokerCommandSIGHUPReloadsTLS(t *testing.T) {
	ca1, ca2 := tlstest.NewCA(t, "ca1"), tlstest.NewCA(t, "ca2")
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "broker.pem"), filepath.Join(dir, "broker-key.pem")
	install := func(ca *tlstest.CA) { ca.IssueAt(t, "broker", certFile, keyFile) }
	install(ca1)
	port, err := zktest.FreePort()
	require.NoError(t, err)
	cfgFile := filepath.Join(dir, "server.ini")
	ini := fmt.Sprintf("[system]\nbrokerId=3\nhostName=127.0.0.1\ndataPath=%s\n[zookeeper]\nzk.zkEnable=false\n"+
		"[security]\ntls.certFile=%s\ntls.keyFile=%s\n[topic=web]\nnumPartitions=1\n", filepath.Join(dir, "data"), certFile, keyFile)
	require.NoError(t, os.WriteFile(cfgFile, []byte(ini), 0o600))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		cmd := newRootCmd()
		cmd.SetArgs([]string{"broker", "-c", cfgFile, "--listen", addr})
		cmd.SetOut(io.Discard)
		done <- cmd.ExecuteContext(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Error("metaq broker did not stop")
		}
	})
	version := func(c *tls.Conn, r *bufio.Reader) error {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte("version 1\r\n")); err != nil {
			return err
		}
		line, err := r.ReadString('\n')
		var n int
		if err == nil {
			if _, serr := fmt.Sscanf(line, "result 200 %d 1\r\n", &n); serr != nil {
				return fmt.Errorf("version reply %q", line)
			}
			_, err = io.CopyN(io.Discard, r, int64(n))
		}
		return err
	}
	dial := func(ca *tlstest.CA) (*tls.Conn, *bufio.Reader, error) {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{RootCAs: ca.Pool()})
		if err != nil {
			return nil, nil, err
		}
		r := bufio.NewReader(c)
		if err := version(c, r); err != nil {
			c.Close()
			return nil, nil, err
		}
		return c, r, nil
	}
	var old *tls.Conn
	var oldR *bufio.Reader
	opsEventually(t, "the TLS broker port", func() bool {
		old, oldR, err = dial(ca1)
		return err == nil
	})
	defer old.Close()

	install(ca2)
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
	opsEventually(t, "the new certificate after SIGHUP", func() bool {
		c, _, err := dial(ca2)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	_, _, err = dial(ca1)
	require.Error(t, err, "the old certificate is no longer served")
	require.NoError(t, version(old, oldR), "the connection made before SIGHUP still works")
}
