package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/internal/conn/authtest"
	"github.com/metaq-go/metaq/internal/tlsconf/tlstest"
)

const cliSecret = "cl1-secret-pw"

// secureBroker is a broker reachable only through an authenticating TLS
// front (user alice), with alice's password in a private file.
type secureBroker struct {
	front  *authtest.Server
	ca     *tlstest.CA
	pwFile string
}

func startSecureBroker(t *testing.T) secureBroker {
	t.Helper()
	contextEnv(t)
	for _, k := range []string{"METAQ_PASSWORD", "METAQ_USER", "METAQ_PASSWORD_FILE", "METAQ_TLS_CA", "METAQ_TLS"} {
		t.Setenv(k, "")
	}
	b := brokertest.Start(t, brokertest.Options{Partitions: 1})
	ca := tlstest.NewCA(t, "cluster-ca")
	pw := filepath.Join(t.TempDir(), "alice.pw")
	require.NoError(t, os.WriteFile(pw, []byte(cliSecret+"\n"), 0o600))
	return secureBroker{front: authtest.Start(t, authtest.Options{Users: map[string]string{"alice": cliSecret}, CA: ca, Upstream: b.Addr()}),
		ca: ca, pwFile: pw}
}

func TestCLIProduceAndStatsOverTLSWithAuth(t *testing.T) {
	s := startSecureBroker(t)
	sec := []string{"--tls-ca", s.ca.CertFile, "--user", "alice", "--password-file", s.pwFile}
	out, err := produceCLI(t, "one\ntwo\n", append([]string{"produce", "--broker", s.front.Addr, "--topic", "sec"}, sec...)...)
	require.NoError(t, err)
	require.Equal(t, "partition 0-0 offset 0\npartition 0-0 offset 23\n", out)

	out = mustMetaq(t, append([]string{"stats", s.front.Addr, "sec"}, sec...)...)
	require.NotEmpty(t, out)

	// The password from the environment instead of a file; PLAIN over TLS.
	t.Setenv("METAQ_PASSWORD", cliSecret)
	mustMetaq(t, "stats", s.front.Addr, "--tls-ca", s.ca.CertFile, "--user", "alice", "--sasl-mechanism", "PLAIN")
	require.Equal(t, 3, s.front.Auths()) // produce, stats, stats
}

func TestCLIBenchProduceOverTLSWithAuth(t *testing.T) {
	s := startSecureBroker(t)
	out, err := produceCLI(t, "", "bench", "produce", "--broker", s.front.Addr, "--topic", "bench", "--messages", "500",
		"--size", "100", "--connections", "2", "--json", "--tls-ca", s.ca.CertFile, "--user", "alice", "--password-file", s.pwFile)
	require.NoError(t, err)
	var r map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &r), out)
	require.EqualValues(t, 500, r["messages"])
	require.EqualValues(t, 0, r["failed"])
	require.GreaterOrEqual(t, s.front.Auths(), 1)
}

func TestCLISecurityErrors(t *testing.T) {
	s := startSecureBroker(t)
	open := filepath.Join(t.TempDir(), "open.pw")
	require.NoError(t, os.WriteFile(open, []byte(cliSecret), 0o644))
	require.NoError(t, os.Chmod(open, 0o644))
	wrong := filepath.Join(t.TempDir(), "wrong.pw")
	require.NoError(t, os.WriteFile(wrong, []byte("not-"+cliSecret), 0o600))
	other := tlstest.NewCA(t, "other-ca")
	for _, tc := range []struct {
		scenario string
		args     []string
		code     int
		want     string
	}{
		{"wrong password", []string{"--tls-ca", s.ca.CertFile, "--user", "alice", "--password-file", wrong}, exitFailure, authtest.Reason},
		{"readable password file", []string{"--tls-ca", s.ca.CertFile, "--user", "alice", "--password-file", open}, exitUsage, "chmod 600"},
		{"user without password", []string{"--tls-ca", s.ca.CertFile, "--user", "alice"}, exitUsage, "needs a password"},
		{"password without user", []string{"--tls-ca", s.ca.CertFile, "--password-file", s.pwFile}, exitUsage, "no --user"},
		{"untrusted CA", []string{"--tls-ca", other.CertFile, "--user", "alice", "--password-file", s.pwFile}, exitFailure, "certificate"},
		{"no TLS", []string{"--user", "alice", "--password-file", s.pwFile}, exitFailure, "does it need TLS"},
		{"missing CA file", []string{"--tls-ca", "/nonexistent/ca.pem"}, exitUsage, "/nonexistent/ca.pem"},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			r := runMetaq(t, append([]string{"stats", s.front.Addr}, tc.args...)...)
			require.Equal(t, tc.code, r.code, "%v\n%s", r.err, r.out)
			require.ErrorContains(t, r.err, tc.want)
			require.NotContains(t, r.err.Error()+r.out, cliSecret)
		})
	}
	require.Zero(t, s.front.Auths())
}

func TestCLIContextSavesSecurityFlagsButNoPassword(t *testing.T) {
	s := startSecureBroker(t)
	dir := os.Getenv("METAQ_CONFIG_DIR")
	t.Setenv("METAQ_PASSWORD", cliSecret) // set while saving: must not be saved
	mustMetaq(t, "context", "save", "secure", "--zk", "127.0.0.1:2181", "--tls-ca", s.ca.CertFile,
		"--user", "alice", "--password-file", s.pwFile)
	raw, err := os.ReadFile(filepath.Join(dir, "contexts", "secure.json"))
	require.NoError(t, err)
	require.NotContains(t, string(raw), cliSecret)
	var saved metaqContext
	require.NoError(t, json.Unmarshal(raw, &saved))
	require.Equal(t, contextSecurity{TLSCA: s.ca.CertFile, User: "alice", PasswordFile: s.pwFile}, saved.contextSecurity)

	var r contextRow
	mustMetaqJSON(t, &r, "context", "show", "secure")
	require.Equal(t, "alice", r.User)

	t.Setenv("METAQ_PASSWORD", "")
	mustMetaq(t, "stats", s.front.Addr, "--context", "secure") // TLS, user and password file from the context
	require.Equal(t, 1, s.front.Auths())
	// A flag still wins over the context.
	r2 := runMetaq(t, "stats", s.front.Addr, "--context", "secure", "--user", "mallory")
	require.Error(t, r2.err)
	require.True(t, strings.Contains(r2.err.Error(), "mallory"), r2.err)
}

// The CLI against a real secured broker (TLS, users file, ACL): produce,
// stats and bench produce with 100-byte messages over TLS with SCRAM; an
// ACL refusal and a wrong password are clear errors.
func TestCLIAgainstSecureBroker(t *testing.T) {
	s := startSecureBroker(t) // for the environment and the password file
	ca := tlstest.NewCA(t, "cluster-ca")
	b := brokertest.Start(t, brokertest.Options{Partitions: 1, Modify: brokertest.Secure(t, brokertest.Security{CA: ca,
		Users: map[string]string{"alice": cliSecret},
		ACL:   `- {principal: alice, operations: [put, get, offset, stats], topics: ["bench*", "orders"]}`})})
	sec := []string{"--tls-ca", ca.CertFile, "--user", "alice", "--password-file", s.pwFile}

	out, err := produceCLI(t, "one\n", append([]string{"produce", "--broker", b.Addr(), "--topic", "orders"}, sec...)...)
	require.NoError(t, err)
	require.Equal(t, "partition 0-0 offset 0\n", out)
	mustMetaq(t, append([]string{"stats", b.Addr(), "orders"}, sec...)...)

	out, err = produceCLI(t, "", append([]string{"bench", "produce", "--broker", b.Addr(), "--topic", "bench", "--messages", "2000",
		"--size", "100", "--connections", "2", "--json"}, sec...)...)
	require.NoError(t, err)
	var r map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &r), out)
	require.EqualValues(t, 2000, r["messages"])
	require.EqualValues(t, 0, r["failed"])

	_, err = produceCLI(t, "x\n", append([]string{"produce", "--broker", b.Addr(), "--topic", "payroll"}, sec...)...)
	require.ErrorContains(t, err, "1 of 1 messages failed")

	wrong := filepath.Join(t.TempDir(), "wrong.pw")
	require.NoError(t, os.WriteFile(wrong, []byte("nope"), 0o600))
	res := runMetaq(t, "stats", b.Addr(), "--tls-ca", ca.CertFile, "--user", "alice", "--password-file", wrong)
	require.Equal(t, exitFailure, res.code, res.out)
	require.ErrorContains(t, res.err, "authentication failed")
	require.ErrorContains(t, res.err, "--password-file")

	// Without --tls-ca the broker's refusal says what to do.
	res = runMetaq(t, "stats", b.Addr(), "--user", "alice", "--password-file", s.pwFile)
	require.Equal(t, exitFailure, res.code, res.out)
	require.ErrorContains(t, res.err, "requires TLS")
}
