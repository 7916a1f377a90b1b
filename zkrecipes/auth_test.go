package zkrecipes_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/zkrecipes"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

// TestDigestAuthOnEveryNewSession checks that the digest identity is in
// force on every session the Session establishes: after a real expiry (the
// same go-zookeeper connection opens a new session) and after a presumed loss
// (a new connection), a write that only the identity may do succeeds, even
// one issued the instant the new session is announced.
func TestDigestAuthOnEveryNewSession(t *testing.T) {
	addr := zktest.Shared(t).Addr
	px := zktest.NewProxyT(t, addr)
	root := testRoot(t)
	ctx := coCtx(t, 60*time.Second)
	owner := connect(t, []string{px.Addr()}, zkrecipes.WithDigestAuth("alice", "secret"))
	anon := connect(t, []string{addr})
	require.NoError(t, anon.EnsurePath(ctx, root))
	guarded := root + "/guarded"
	_, err := owner.Create(ctx, guarded, nil, zkrecipes.Persistent)
	require.NoError(t, err)
	acl, _, err := owner.GetACL(ctx, guarded)
	require.NoError(t, err)
	_, id := owner.DigestIdentity()
	require.Equal(t, []zk.ACL{{Perms: zk.PermAll, Scheme: "digest", ID: id}, {Perms: zk.PermRead, Scheme: "world", ID: "anyone"}}, acl)
	acl, _, err = anon.GetACL(ctx, guarded)
	require.NoError(t, err)
	require.Equal(t, "alice:x", acl[0].ID, "ZooKeeper hides the digest from those without ADMIN")
	_, err = anon.Create(ctx, guarded+"/x", nil, zkrecipes.Ephemeral)
	require.ErrorIs(t, err, zkrecipes.ErrNoAuth)

	// writeOnNewSession creates an ephemeral child of the guarded node as
	// soon as the next new session is announced.
	sub := owner.Subscribe()
	defer sub.Close()
	writeOnNewSession := func(name string) {
		t.Helper()
		for {
			select {
			case ev := <-sub.C:
				if ev.State != zkrecipes.StateConnected || !ev.NewSession {
					continue
				}
				_, err := owner.Create(ctx, guarded+"/"+name, nil, zkrecipes.Ephemeral)
				require.NoError(t, err, "the identity must be in force on the new session")
				return
			case <-ctx.Done():
				t.Fatalf("no new session: %v", ctx.Err())
			}
		}
	}

	expire(t, addr, owner) // same connection, new session
	writeOnNewSession("after-expiry")

	px.Freeze() // a whole session timeout without a connection: presumed lost, new connection
	go func() {
		for owner.State() != zkrecipes.StateLost && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
		px.Unfreeze()
	}()
	writeOnNewSession("after-presumed-loss")
	_, err = owner.Set(ctx, guarded, []byte("still mine"), -1)
	require.NoError(t, err)
}

// TestACLProviderChoosesPerPath checks that WithACLProvider decides the ACL
// of every way a node gets created, falls back to the default ACL on nil and
// refuses the creation on an error.
func TestACLProviderChoosesPerPath(t *testing.T) {
	addr := zktest.Shared(t).Addr
	root := testRoot(t)
	ctx := coCtx(t, 30*time.Second)
	refuse := errors.New("not mine to create")
	open := zk.WorldACL(zk.PermRead | zk.PermCreate)
	s := connect(t, []string{addr}, zkrecipes.WithDigestAuth("alice", "secret"),
		zkrecipes.WithACLProvider(func(p string) ([]zk.ACL, error) {
			switch {
			case strings.HasSuffix(p, "/forbidden"):
				return nil, refuse
			case strings.HasSuffix(p, "open"):
				return open, nil
			}
			return nil, nil
		}))
	aclOf := func(p string) []zk.ACL {
		t.Helper()
		acl, _, err := s.GetACL(ctx, p)
		require.NoError(t, err)
		return acl
	}
	require.NoError(t, s.EnsurePath(ctx, root+"/open"))
	require.Equal(t, open, aclOf(root+"/open"), "EnsurePath")
	_, id := s.DigestIdentity()
	def := []zk.ACL{{Perms: zk.PermAll, Scheme: "digest", ID: id}, {Perms: zk.PermRead, Scheme: "world", ID: "anyone"}}
	require.Equal(t, def, aclOf(root), "nil: the default ACL")

	_, err := s.Create(ctx, root+"/open/forbidden", nil, zkrecipes.Persistent)
	require.ErrorIs(t, err, refuse)
	_, err = s.CreateParents(ctx, root+"/forbidden/x", nil, zkrecipes.Persistent)
	require.ErrorIs(t, err, refuse, "a parent is refused too")
	_, err = s.Multi(ctx, &zk.CreateRequest{Path: root + "/forbidden"})
	require.ErrorIs(t, err, refuse, "Multi")

	_, err = s.Multi(ctx, &zk.CreateRequest{Path: root + "/multi-open"})
	require.NoError(t, err)
	require.Equal(t, open, aclOf(root+"/multi-open"), "Multi")
	p, err := s.CreateProtected(ctx, root+"/prot-open", "n-", nil, false)
	require.NoError(t, err)
	require.Equal(t, open, aclOf(root+"/prot-open"), "CreateProtected's parent")
	require.Equal(t, def, aclOf(p))

	_, err = s.SetACL(ctx, root+"/multi-open", def, -1)
	require.ErrorIs(t, err, zkrecipes.ErrNoAuth, "world READ|CREATE has no ADMIN, not even for the creator")
	st, err := s.SetACL(ctx, p, open, 0)
	require.NoError(t, err)
	require.Equal(t, int32(1), st.Aversion)
	require.Equal(t, open, aclOf(p))
}

func TestDigestCredentialsParsing(t *testing.T) {
	u, pw, err := zkrecipes.ParseDigest("metaq:pa:ss word\n")
	require.NoError(t, err)
	require.Equal(t, "metaq", u)
	require.Equal(t, "pa:ss word", pw)
	for _, bad := range []string{"", "nouser", ":pw", "user:"} {
		_, _, err := zkrecipes.ParseDigest(bad)
		require.Error(t, err, bad)
	}
	_, _, err = zkrecipes.ParseDigest("s3cr3t-only")
	require.NotContains(t, err.Error(), "s3cr3t", "errors never show the secret")

	dir := t.TempDir()
	file := filepath.Join(dir, "zk.auth")
	require.NoError(t, os.WriteFile(file, []byte("metaq:s3cr3t\n"), 0o600))
	u, pw, err = zkrecipes.ReadDigestFile(file)
	require.NoError(t, err)
	require.Equal(t, "metaq", u)
	require.Equal(t, "s3cr3t", pw)
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644} {
		require.NoError(t, os.Chmod(file, mode))
		_, _, err = zkrecipes.ReadDigestFile(file)
		require.ErrorContains(t, err, "must not be readable by group or others", "mode %o", mode)
		require.NotContains(t, err.Error(), "s3cr3t")
	}
	_, _, err = zkrecipes.ReadDigestFile(filepath.Join(dir, "missing"))
	require.Error(t, err)
	require.Equal(t, zk.DigestACL(zk.PermAll, "metaq", "s3cr3t")[0].ID, zkrecipes.DigestID("metaq", "s3cr3t"))
}
