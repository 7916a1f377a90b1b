package security

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/xdg-go/scram"
)

// RFC 7677 §3: user "user", password "pencil".
const (
	rfcSalt        = "W22ZaJ0SNY7soEsUEjb6gQ=="
	rfcClientNonce = "rOprNGfwEbeRWgbNEkqO"
	rfcServerNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
	rfcClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
	rfcServerFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
	rfcClientFinal = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
	rfcServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
)

func rfcUsers(t *testing.T) *Users {
	t.Helper()
	salt, _ := base64.StdEncoding.DecodeString(rfcSalt)
	c, err := deriveCredentials("user", "pencil", salt, 4096)
	require.NoError(t, err)
	u := NewUsers()
	require.NoError(t, u.Set("user", c))
	return u
}

func TestSCRAMServerReproducesRFC7677Exchange(t *testing.T) {
	a, err := NewAuthenticator(rfcUsers(t))
	require.NoError(t, err)
	a.server = a.server.WithNonceGenerator(func() string { return rfcServerNonce })
	conv := a.NewSCRAM()
	first, done, _, err := conv.Step([]byte(rfcClientFirst))
	require.NoError(t, err)
	require.False(t, done)
	require.Equal(t, rfcServerFirst, string(first))
	final, done, user, err := conv.Step([]byte(rfcClientFinal))
	require.NoError(t, err)
	require.True(t, done)
	require.Equal(t, "user", user)
	require.Equal(t, rfcServerFinal, string(final))
}

func TestSCRAMWithXdgClient(t *testing.T) {
	u := NewUsers()
	c, err := NewCredentials("alice", "s3cret pass")
	require.NoError(t, err)
	require.NoError(t, u.Set("alice", c))
	a, err := NewAuthenticator(u)
	require.NoError(t, err)
	run := func(user, password string) (string, error) {
		cl, err := scram.SHA256.NewClient(user, password, "")
		require.NoError(t, err)
		cc, sc := cl.NewConversation(), a.NewSCRAM()
		msg, err := cc.Step("")
		require.NoError(t, err)
		for {
			reply, done, who, err := sc.Step([]byte(msg))
			if done {
				if err != nil {
					return "", err
				}
				_, cerr := cc.Step(string(reply))
				require.NoError(t, cerr, "the client verifies the server signature")
				return who, nil
			}
			msg, err = cc.Step(string(reply))
			require.NoError(t, err)
		}
	}
	who, err := run("alice", "s3cret pass")
	require.NoError(t, err)
	require.Equal(t, "alice", who)
	for _, tc := range []struct{ user, password, cause string }{
		{"alice", "wrong", "proof invalid"},
		{"mallory", "whatever", "unknown user"},
	} {
		_, err := run(tc.user, tc.password)
		require.ErrorIs(t, err, ErrAuthFailed)
		require.Equal(t, ErrAuthFailed.Error(), err.Error(), "one generic reason")
		var ae *AuthError
		require.True(t, errors.As(err, &ae))
		require.Equal(t, tc.user, ae.User)
		require.Contains(t, ae.Cause, tc.cause)
	}
}

func TestSCRAMUnknownUserGetsAStableChallenge(t *testing.T) {
	a, err := NewAuthenticator(NewUsers())
	require.NoError(t, err)
	salt := func() string {
		reply, done, _, err := a.NewSCRAM().Step([]byte("n,,n=ghost,r=abcdefgh"))
		require.NoError(t, err)
		require.False(t, done, "an unknown user is not told apart at the first step")
		return strings.Split(string(reply), ",")[1]
	}
	require.Equal(t, salt(), salt())
}

func TestPlainVerifiesAgainstStoredKeys(t *testing.T) {
	a, err := NewAuthenticator(rfcUsers(t))
	require.NoError(t, err)
	user, err := a.Plain([]byte("\x00user\x00pencil"))
	require.NoError(t, err)
	require.Equal(t, "user", user)
	user, err = a.Plain([]byte("user\x00user\x00pencil"))
	require.NoError(t, err)
	require.Equal(t, "user", user)
	for name, msg := range map[string]string{
		"wrong password":   "\x00user\x00pencil2",
		"unknown user":     "\x00nobody\x00pencil",
		"other authzid":    "admin\x00user\x00pencil",
		"not three fields": "user\x00pencil",
	} {
		_, err := a.Plain([]byte(msg))
		require.ErrorIs(t, err, ErrAuthFailed, name)
		require.Equal(t, ErrAuthFailed.Error(), err.Error(), name)
		require.NotContains(t, err.(*AuthError).Cause, "pencil", "never the password")
	}
}

func TestUsersFileRoundTripAndMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.yaml")
	u := NewUsers()
	for _, name := range []string{"bob", "alice"} {
		c, err := NewCredentials(name, "pw-"+name)
		require.NoError(t, err)
		require.NoError(t, u.Set(name, c))
	}
	require.NoError(t, u.Save(path))
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	data, _ := os.ReadFile(path)
	require.NotContains(t, string(data), "pw-alice")
	back, err := LoadUsers(path)
	require.NoError(t, err)
	require.Equal(t, []string{"alice", "bob"}, back.Names())
	c, _ := back.Lookup("alice")
	require.True(t, c.Verify("alice", "pw-alice"))
	require.False(t, c.Verify("alice", "pw-bob"))
	require.True(t, back.Remove("bob"))
	require.NoError(t, back.Save(path))
	again, err := LoadUsers(path)
	require.NoError(t, err)
	require.Equal(t, []string{"alice"}, again.Names())
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".users.yaml.tmp*"))
	require.Empty(t, left, "no temporary file is left behind")
}

func TestMalformedUsersFiles(t *testing.T) {
	good, err := NewCredentials("alice", "pw")
	require.NoError(t, err)
	b64 := base64.StdEncoding.EncodeToString
	entry := func(iters int, salt, stored string) string {
		return "version: 1\nusers:\n  alice:\n    mechanism: SCRAM-SHA-256\n    iterations: " + strconv.Itoa(iters) +
			"\n    salt: " + salt + "\n    storedKey: " + stored + "\n    serverKey: " + b64(good.ServerKey) + "\n"
	}
	for name, tc := range map[string]struct{ content, want string }{
		"not yaml":          {"users: [\n", "not valid YAML"},
		"future version":    {"version: 2\nusers: {}\n", "version \"2\" is not supported"},
		"unknown top key":   {"version: 1\nuser: {}\n", "users.yaml:2: unknown key \"user\""},
		"few iterations":    {entry(1000, b64(good.Salt), b64(good.StoredKey)), "iterations 1000 is below 4096"},
		"short salt":        {entry(4096, b64([]byte("salt")), b64(good.StoredKey)), "salt has 4 bytes"},
		"bad base64":        {entry(4096, "not!base64", b64(good.StoredKey)), "salt is not standard base64"},
		"short stored key":  {entry(4096, b64(good.Salt), b64([]byte("x"))), "storedKey has 1 bytes"},
		"password field":    {"version: 1\nusers:\n  alice:\n    password: hunter2\n", "users.yaml:4: user \"alice\": unknown key \"password\""},
		"bad mechanism":     {"version: 1\nusers:\n  alice:\n    mechanism: MD5\n", "mechanism \"MD5\" is not supported"},
		"reserved name":     {"version: 1\nusers:\n  anonymous: {}\n", "principal of unauthenticated clients"},
		"name with a comma": {"version: 1\nusers:\n  \"a,b\": {}\n", "contains ','"},
		"users not a map":   {"version: 1\nusers: [alice]\n", "users must be a mapping"},
	} {
		_, err := ParseUsers("users.yaml", []byte(tc.content))
		require.ErrorIs(t, err, ErrBadUsersFile, name)
		require.Contains(t, err.Error(), tc.want, name)
		require.Contains(t, err.Error(), "users.yaml", name)
	}
	_, err = LoadUsers(filepath.Join(t.TempDir(), "missing.yaml"))
	require.ErrorIs(t, err, ErrBadUsersFile)
	require.Contains(t, err.Error(), "metaq users add")
	u, err := ParseUsers("empty.yaml", nil)
	require.NoError(t, err)
	require.Zero(t, u.Len())
}
