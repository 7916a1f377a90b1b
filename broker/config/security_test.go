package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSecurityDefaults(t *testing.T) {
	c := mustParse(t, minimalINI)
	assert.Equal(t, Security{AllowAnonymous: true}, c.Security())
	assert.False(t, c.Security().TLS())
	assert.Equal(t, "127.0.0.1", c.Broker().AdminHost, "the admin port binds loopback by default")
}

func TestSecurityKeys(t *testing.T) {
	c := mustParse(t, "[system]\nbrokerId=1\nadminHost=0.0.0.0\n[zookeeper]\nzk.zkEnable=false\n[security]\ntls.certFile=/etc/metaq/b.pem\ntls.keyFile=/etc/metaq/b-key.pem\n"+
		"tls.clientCAFile=/etc/metaq/ca.pem\nadminTokenFile=/etc/metaq/admin.token\nplaintextPort=8124\n")
	assert.Equal(t, Security{TLSCertFile: "/etc/metaq/b.pem", TLSKeyFile: "/etc/metaq/b-key.pem", TLSClientCAFile: "/etc/metaq/ca.pem",
		AdminTokenFile: "/etc/metaq/admin.token", PlaintextPort: 8124, AllowAnonymous: true}, c.Security())
	assert.True(t, c.Security().TLS())
	assert.Equal(t, "0.0.0.0", c.Broker().AdminHost)
}

func TestSecurityEnv(t *testing.T) {
	t.Setenv("METAQ_SECURITY_TLS_CERTFILE", "/x/cert.pem")
	t.Setenv("METAQ_SECURITY_TLS_KEYFILE", "/x/key.pem")
	c, err := Parse([]byte(minimalINI), "ini")
	require.NoError(t, err)
	assert.Equal(t, "/x/cert.pem", c.Security().TLSCertFile)
	t.Setenv("METAQ_SECURITY_TLS_CERTFIL", "typo")
	_, err = Parse([]byte(minimalINI), "ini")
	require.ErrorContains(t, err, "METAQ_SECURITY_TLS_CERTFILE")
}

func TestSecurityValidation(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"[security]\ntls.certFile=/a.pem\n", "set tls.keyFile"},
		{"[security]\ntls.keyFile=/a.pem\n", "set tls.certFile"},
		{"[security]\ntls.clientCAFile=/ca.pem\n", "needs TLS"},
		{"[security]\nplaintextPort=8124\n", "only for TLS"},
		{"[security]\ntls.certFile=/a\ntls.keyFile=/b\nplaintextPort=8123\n", "also serverPort"},
		{"[security]\ntls.certfil=/a\n", "tls.certFile"},
	} {
		_, err := Parse([]byte(minimalINI+tc.text), "ini", WithoutEnv())
		require.ErrorContains(t, err, tc.want, tc.text)
	}
	_, err := Parse([]byte("[system]\nbrokerId=1\nadminHost=a b\n[zookeeper]\nzk.zkEnable=false\n"), "ini", WithoutEnv())
	require.ErrorContains(t, err, "adminHost")
}

func TestSecurityDefaultsAreOff(t *testing.T) {
	s := mustParse(t, minimalINI).Security()
	assert.Equal(t, Security{AllowAnonymous: true}, s)
	assert.False(t, s.Enabled())
}

func TestSecurityUsersFileRefusesAnonymousByDefault(t *testing.T) {
	home, _ := os.UserHomeDir()
	s := mustParse(t, minimalINI+"[security]\nusersFile=~/metaq/users.yaml\naclFile=/etc/metaq/acl.yaml\n").Security()
	assert.Equal(t, Security{UsersFile: filepath.Join(home, "metaq/users.yaml"), ACLFile: "/etc/metaq/acl.yaml"}, s)
	assert.True(t, s.Enabled())
	s = mustParse(t, minimalINI+"[security]\nusersFile=/u.yaml\nallowAnonymous=true\n").Security()
	assert.True(t, s.AllowAnonymous)
	assert.True(t, s.Enabled())
}

func TestSecurityAnonymousRefusedWithoutUsersWarns(t *testing.T) {
	c := mustParse(t, minimalINI+"[security]\nallowAnonymous=false\n")
	assert.True(t, c.Security().Enabled())
	assert.Contains(t, c.Warnings()[len(c.Warnings())-1], "allowAnonymous=false without usersFile")
}

func TestSecurityBadValues(t *testing.T) {
	for name, tc := range map[string]struct{ text, want string }{
		"not a boolean": {"allowAnonymous=maybe", "is not a boolean"},
		"typo":          {"userFile=/u.yaml", `did you mean "usersFile"?`},
		"other section": {"brokerId=3", "belongs in [system]"},
	} {
		_, err := Parse([]byte(minimalINI+"[security]\n"+tc.text+"\n"), "ini", WithoutEnv())
		require.Error(t, err, name)
		var ce *Error
		require.True(t, errors.As(err, &ce), "%v", err)
		assert.Equal(t, sectionSecurity, ce.Section, name)
		assert.Contains(t, err.Error(), tc.want, name)
	}
	_, err := Parse([]byte(minimalINI+"[securty]\nusersFile=/u\n"), "ini", WithoutEnv())
	require.ErrorContains(t, err, "did you mean [security]?")
}

func TestSecurityFromEnvironment(t *testing.T) {
	t.Setenv("METAQ_SECURITY_USERSFILE", "/run/users.yaml")
	c, err := Parse([]byte(minimalINI), "ini")
	require.NoError(t, err)
	assert.Equal(t, "/run/users.yaml", c.Security().UsersFile)
	assert.False(t, c.Security().AllowAnonymous)
}
