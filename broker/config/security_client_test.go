package config

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReplicationClientDefaults(t *testing.T) {
	assert.Equal(t, ReplicationClient{}, mustParse(t, minimalINI).ReplicationClient())
}

func TestReplicationClientKeys(t *testing.T) {
	r := mustParse(t, minimalINI+"[security]\nbrokerUser=replicator\nbrokerPasswordFile=/etc/metaq/pw\ntls.caFile=/etc/metaq/ca.pem\n").ReplicationClient()
	assert.Equal(t, ReplicationClient{User: "replicator", PasswordFile: "/etc/metaq/pw", TLS: true, CAFile: "/etc/metaq/ca.pem"}, r)
}

func TestReplicationClientFollowsTheBrokersTLS(t *testing.T) {
	tlsKeys := "tls.certFile=/b.pem\ntls.keyFile=/b-key.pem\n"
	r := mustParse(t, minimalINI+"[security]\n"+tlsKeys+"tls.clientCAFile=/clients.pem\n").ReplicationClient()
	assert.Equal(t, ReplicationClient{TLS: true, CAFile: "/clients.pem", CertFile: "/b.pem", KeyFile: "/b-key.pem"}, r,
		"tls.caFile defaults to tls.clientCAFile; the broker's certificate is the slave's client certificate")
	r = mustParse(t, minimalINI+"[security]\n"+tlsKeys).ReplicationClient()
	assert.Equal(t, ReplicationClient{TLS: true, CertFile: "/b.pem", KeyFile: "/b-key.pem"}, r, "a TLS broker follows over TLS (system CAs)")
}

func TestReplicationClientFromEnvironment(t *testing.T) {
	t.Setenv("METAQ_SECURITY_TLS_CAFILE", "/env/ca.pem")
	c, err := Parse([]byte(minimalINI), "ini")
	require.NoError(t, err)
	assert.Equal(t, "/env/ca.pem", c.ReplicationClient().CAFile)
	assert.True(t, c.ReplicationClient().TLS)
}

func TestReplicationClientBadValues(t *testing.T) {
	for _, tc := range []struct{ scenario, text, want string }{
		{"user without password file", "brokerUser=replicator", "needs brokerPasswordFile"},
		{"password file without user", "brokerPasswordFile=/pw", "needs brokerUser"},
		{"misspelt key", "brokerUsr=replicator", "did you mean"},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			_, err := Parse([]byte(minimalINI+"[security]\n"+tc.text+"\n"), "ini", WithoutEnv())
			require.Error(t, err)
			var ce *Error
			require.True(t, errors.As(err, &ce), "%v", err)
			assert.Equal(t, sectionSecurity, ce.Section, "%v", err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}
