package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestZooKeeperDigestIdentity(t *testing.T) {
	u, pw := mustParse(t, minimalINI).ZooKeeper().Digest()
	require.Empty(t, u, "no identity by default: world ACLs as MetaQ")
	require.Empty(t, pw)

	u, pw = mustParse(t, minimalINI+"zk.zkAuth=metaq:s3cr3t:x\n").ZooKeeper().Digest()
	require.Equal(t, "metaq", u)
	require.Equal(t, "s3cr3t:x", pw)

	dir := t.TempDir()
	file := filepath.Join(dir, "zk.auth")
	require.NoError(t, os.WriteFile(file, []byte("cluster:fr0m-file\n"), 0o600))
	zk := mustParse(t, minimalINI+"zk.zkAuthFile="+file+"\n").ZooKeeper()
	u, pw = zk.Digest()
	require.Equal(t, "cluster", u)
	require.Equal(t, "fr0m-file", pw)
	require.Equal(t, file, zk.AuthFile)

	t.Setenv("METAQ_ZOOKEEPER_ZKAUTH", "envuser:env-pw")
	c, err := Parse([]byte(minimalINI), "ini")
	require.NoError(t, err)
	u, pw = c.ZooKeeper().Digest()
	require.Equal(t, "envuser", u, "from the environment")
	require.Equal(t, "env-pw", pw)
}

func TestZooKeeperDigestErrorsHideTheSecret(t *testing.T) {
	dir := t.TempDir()
	loose := filepath.Join(dir, "loose.auth")
	require.NoError(t, os.WriteFile(loose, []byte("cluster:s3cr3t\n"), 0o644))
	for name, tc := range map[string]struct{ text, want string }{
		"no colon":  {"zk.zkAuth=s3cr3t\n", "zk.zkAuth"},
		"no user":   {"zk.zkAuth=:s3cr3t\n", "user:password"},
		"both":      {"zk.zkAuth=u:s3cr3t\nzk.zkAuthFile=" + loose + "\n", "set only one"},
		"loose":     {"zk.zkAuthFile=" + loose + "\n", "must not be readable by group or others"},
		"missing":   {"zk.zkAuthFile=" + filepath.Join(dir, "nope") + "\n", "zk.zkAuthFile"},
		"empty pwd": {"zk.zkAuth=u:\n", "zk.zkAuth"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(minimalINI+tc.text), "ini", WithoutEnv())
			require.ErrorContains(t, err, tc.want)
			require.ErrorIs(t, err, ErrBadValue)
			require.NotContains(t, err.Error(), "s3cr3t")
		})
	}
	// Without ZooKeeper the keys are not read.
	_, err := Parse([]byte("[system]\nbrokerId=1\n[zookeeper]\nzk.zkEnable=false\nzk.zkAuthFile="+loose+"\n"), "ini", WithoutEnv())
	require.NoError(t, err)
}
