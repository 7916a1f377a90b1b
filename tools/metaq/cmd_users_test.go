package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/internal/security"
)

// runMetaqIn runs the CLI with stdin.
func runMetaqIn(t *testing.T, stdin string, args ...string) metaqResult {
	t.Helper()
	out, err := produceCLI(t, stdin, args...)
	return metaqResult{out: out, err: err, code: exitCode(err)}
}

func TestUsersAddListRemove(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "users.yaml")
	r := runMetaqIn(t, "alice-pw\n", "users", "add", "alice", "--users-file", file)
	require.Equal(t, exitOK, r.code, "%v %s", r.err, r.out)
	require.Contains(t, r.out, "added user alice")
	pwFile := filepath.Join(dir, "pw")
	require.NoError(t, os.WriteFile(pwFile, []byte("bob-pw\n"), 0o600))
	require.Contains(t, mustMetaq(t, "users", "add", "bob", "--users-file", file, "--password-file", pwFile), "added user bob")
	r = runMetaqIn(t, "alice-new\n", "users", "add", "alice", "--users-file", file)
	require.Equal(t, exitOK, r.code, "%v", r.err)
	require.Contains(t, r.out, "changed the password of user alice")

	data, err := os.ReadFile(file)
	require.NoError(t, err)
	require.NotContains(t, string(data), "alice-new")
	require.NotContains(t, string(data), "bob-pw")
	st, err := os.Stat(file)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	u, err := security.LoadUsers(file)
	require.NoError(t, err)
	c, _ := u.Lookup("alice")
	require.True(t, c.Verify("alice", "alice-new"))
	c, _ = u.Lookup("bob")
	require.True(t, c.Verify("bob", "bob-pw"))

	out := mustMetaq(t, "users", "list", "--users-file", file)
	require.Contains(t, out, "alice")
	require.Contains(t, out, "SCRAM-SHA-256")
	require.NotContains(t, out, "storedKey")
	var rows []userRow
	mustMetaqJSON(t, &rows, "users", "list", "--users-file", file)
	require.Equal(t, []userRow{{"alice", "SCRAM-SHA-256"}, {"bob", "SCRAM-SHA-256"}}, rows)

	require.Contains(t, mustMetaq(t, "users", "remove", "bob", "--users-file", file), "removed user bob")
	r = runMetaq(t, "users", "remove", "bob", "--users-file", file)
	require.NotEqual(t, exitOK, r.code)
	require.Contains(t, r.err.Error(), "no user bob")
}

func TestUsersAddRefusesBadInput(t *testing.T) {
	file := filepath.Join(t.TempDir(), "users.yaml")
	for name, tc := range map[string]struct {
		stdin string
		args  []string
		want  string
	}{
		"empty password":  {"\n", []string{"users", "add", "alice", "--users-file", file}, "empty password"},
		"reserved name":   {"pw\n", []string{"users", "add", "anonymous", "--users-file", file}, "unauthenticated clients"},
		"no users file":   {"pw\n", []string{"users", "add", "alice"}, "users-file"},
		"password as arg": {"pw\n", []string{"users", "add", "alice", "secret", "--users-file", file}, "accepts 1 arg"},
	} {
		r := runMetaqIn(t, tc.stdin, tc.args...)
		require.NotEqual(t, exitOK, r.code, name)
		require.Contains(t, r.err.Error(), tc.want, name)
	}
	_, err := os.Stat(file)
	require.True(t, os.IsNotExist(err), "nothing written")
	require.NoError(t, os.WriteFile(file, []byte("version: 1\nusers:\n  alice:\n    password: x\n"), 0o600))
	r := runMetaqIn(t, "pw\n", "users", "add", "bob", "--users-file", file)
	require.NotEqual(t, exitOK, r.code)
	require.Contains(t, r.err.Error(), `unknown key "password"`, "a malformed file is not overwritten")
}
