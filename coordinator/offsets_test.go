package coordinator

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/zkrecipes"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

func TestOffsetCodec(t *testing.T) {
	cases := []struct {
		in      string
		want    Offset
		wantErr bool
	}{
		{"123-4567", Offset{123, 4567}, false},
		{"-1-1024", Offset{-1, 1024}, false},
		{"-9223372036854775808-0", Offset{-9223372036854775808, 0}, false},
		{"2048", Offset{-1, 2048}, false},
		{" 77-88\n", Offset{77, 88}, false},
		{"0", Offset{-1, 0}, false},
		{"", Offset{}, true},
		{"-5", Offset{}, true},     // a bare negative offset
		{"5--6", Offset{}, true},   // negative offset
		{"abc-1", Offset{}, true},  // bad msgId
		{"1-", Offset{}, true},     // no offset
		{"1-+2", Offset{}, true},   // sign on offset
		{"1-2-3", Offset{}, true},  // msgId "1-2"
		{"--1-2", Offset{}, true},  // msgId "--1"
		{"12 - 3", Offset{}, true}, // spaces inside
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseOffset(tc.in)
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			again, err := ParseOffset(got.String())
			require.NoError(t, err)
			require.Equal(t, got, again, "round trip")
		})
	}
	require.Equal(t, "-1-0", Offset{-1, 0}.String())
}

func internalSession(t *testing.T) *zkrecipes.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := zkrecipes.Connect(ctx, []string{zktest.Shared(t).Addr}, zkrecipes.WithSessionTimeout(2*time.Second))
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

func TestCommitFencedByOwnerNode(t *testing.T) {
	s := internalSession(t)
	ctx := context.Background()
	paths := NewPaths("/fence" + time.Now().Format("150405.000000000"))
	tp := TopicPartition{"t", Partition{1, 0}}
	claim := func(s *zkrecipes.Session) fenceToken {
		owner, err := s.CreateParents(ctx, paths.GroupOwner("g", "t", 1, 0), []byte("m"), zkrecipes.Ephemeral)
		require.NoError(t, err)
		fence, err := s.CreateProtected(ctx, paths.GroupFences("g", "t"), "1-0", []byte("m"), false)
		require.NoError(t, err)
		return fenceToken{fence: fence, owner: owner, version: 0}
	}
	tok := claim(s)
	// Creates the offset node (and its parents) under the owner check.
	require.NoError(t, commitFenced(ctx, s, paths, "g", tp, tok, Offset{1, 10}))
	require.NoError(t, commitFenced(ctx, s, paths, "g", tp, tok, Offset{2, 20}))
	require.NoError(t, s.Delete(ctx, tok.owner, -1))
	require.ErrorIs(t, commitFenced(ctx, s, paths, "g", tp, tok, Offset{3, 30}), ErrNotOwner)
	// The session ends (its nodes go) and a new owner re-creates the very same
	// owner node at version 0: the old claim's commit is still refused.
	require.NoError(t, s.Delete(ctx, tok.fence, -1))
	tok2 := claim(internalSession(t))
	require.Equal(t, tok.owner, tok2.owner)
	require.ErrorIs(t, commitFenced(ctx, s, paths, "g", tp, tok, Offset{3, 30}), ErrNotOwner)
	o, found, err := FetchOffset(ctx, s, paths, "g", tp)
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, Offset{2, 20}, o)
	// No offset node is created for a partition we never owned.
	tp2 := TopicPartition{"t", Partition{1, 1}}
	require.ErrorIs(t, commitFenced(ctx, s, paths, "g", tp2, tok, Offset{3, 30}), ErrNotOwner)
	_, found, err = FetchOffset(ctx, s, paths, "g", tp2)
	require.NoError(t, err)
	require.False(t, found)
}

// A leader whose session ended cannot write the assignment: the Multi's
// version check on its (gone) member node fails and nothing is written.
func TestExpiredLeaderCannotWriteAssignment(t *testing.T) {
	srv := zktest.Shared(t)
	old := internalSession(t)
	s := internalSession(t)
	ctx := context.Background()
	paths := NewPaths("/lead" + time.Now().Format("150405.000000000"))
	node, err := old.CreateProtected(ctx, paths.GroupMembers("g"), MemberNodeName, []byte(`{"id":"m"}`), true)
	require.NoError(t, err)
	require.NoError(t, zktest.ExpireSession(ctx, srv.Addr, zktest.Credentials{SessionID: old.ID(), Password: old.Password()}))
	g := &Group{s: s, paths: paths, opts: GroupOptions{Group: "g", MemberID: "m"}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	l := newLeader(g, node, 0, 0)
	l.loaded, l.snapVersion, l.prev = true, -1, Assignment{}
	next := Assignment{"m": {Topics: map[string][]Partition{"t": {{1, 0}}}}}
	err = l.write(ctx, []Member{{ID: "m", Topics: []string{"t"}}}, next)
	require.ErrorIs(t, err, errNotLeader)
	ok, _, err := s.Exists(ctx, paths.GroupAssign("g"))
	require.NoError(t, err)
	require.False(t, ok, "nothing written")
}
