package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/internal/tlsconf/tlstest"
)

func writeSecret(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "broker.password")
	require.NoError(t, os.WriteFile(p, []byte(content), mode))
	require.NoError(t, os.Chmod(p, mode))
	return p
}

func TestReplicationClientDefaults(t *testing.T) {
	assert.Equal(t, ReplicationClient{}, mustParse(t, minimalINI).ReplicationClient())
}

func TestReplicationClientKeys(t *testing.T) {
	ca := tlstest.NewCA(t, "cluster-ca")
	pw := writeSecret(t, "s3cret\n", 0o600)
	r := mustParse(t, minimalINI+"[security]\nbrokerUser=replicator\nbrokerPasswordFile="+pw+"\ntls.caFile="+ca.CertFile+"\n").ReplicationClient()
	assert.Equal(t, "replicator", r.User)
	assert.Equal(t, "s3cret", r.Password, "one trailing newline is dropped")
	assert.Equal(t, ca.CertFile, r.CAFile)
	require.NotNil(t, r.TLS)
	assert.Equal(t, uint16(tls.VersionTLS12), r.TLS.MinVersion)
	assert.NotContains(t, fmt.Sprintf("%v %+v %#v %s", r, r, r, &r), "s3cret")
}

func TestReplicationClientFromEnvironment(t *testing.T) {
	ca := tlstest.NewCA(t, "cluster-ca")
	t.Setenv("METAQ_SECURITY_TLS_CAFILE", ca.CertFile)
	c, err := Parse([]byte(minimalINI), "ini")
	require.NoError(t, err)
	assert.Equal(t, ca.CertFile, c.ReplicationClient().CAFile)
	assert.NotNil(t, c.ReplicationClient().TLS)
}

func TestReplicationClientBadValues(t *testing.T) {
	open := writeSecret(t, "s3cret\n", 0o644)
	ok := writeSecret(t, "s3cret\n", 0o600)
	for _, tc := range []struct{ scenario, text, want string }{
		{"user without password file", "brokerUser=replicator", "needs brokerPasswordFile"},
		{"password file without user", "brokerPasswordFile=" + ok, "needs brokerUser"},
		{"world-readable password file", "brokerUser=replicator\nbrokerPasswordFile=" + open, "chmod 600"},
		{"missing password file", "brokerUser=replicator\nbrokerPasswordFile=/nonexistent/pw", "/nonexistent/pw"},
		{"missing CA file", "tls.caFile=/nonexistent/ca.pem", "/nonexistent/ca.pem"},
		{"unknown key", "brokerUsr=replicator", "did you mean"},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			_, err := Parse([]byte(minimalINI+"[security]\n"+tc.text+"\n"), "ini", WithoutEnv())
			require.Error(t, err)
			var ce *Error
			require.True(t, errors.As(err, &ce), "%v", err)
			assert.Equal(t, sectionSecurity, ce.Section, "%v", err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), "s3cret")
		})
	}
}
