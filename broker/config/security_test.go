package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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
