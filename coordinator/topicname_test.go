package coordinator_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/protocol"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

// TestIllegalTopicNamesNeverBecomePaths: every coordinator entry point that
// builds a ZooKeeper path from a topic name refuses what protocol.ValidTopic
// refuses ("." and ".." used to pass the group's own check and became the
// path components /owners/. and /offsets/..), before touching ZooKeeper.
func TestIllegalTopicNamesNeverBecomePaths(t *testing.T) {
	srv := zktest.Shared(t)
	s := connect(t, srv.Addr)
	paths := coordinator.NewPaths(uniqueRoot(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v := coordinator.NewClusterView(s, paths)
	defer v.Close()
	r := coordinator.NewRegistrar(s, paths, coordinator.BrokerInfo{ID: 7, URI: "meta://127.0.0.1:1"}, nil)
	defer r.Close(ctx)

	for _, bad := range []string{".", "..", "a/b", "", "a b"} {
		calls := map[string]error{}
		_, calls["JoinGroup"] = coordinator.JoinGroup(ctx, s, paths, coordinator.GroupOptions{Group: "g", Topics: []string{"ok", bad}})
		_, calls["ClusterView.Partitions"] = v.Partitions(ctx, bad)
		_, calls["SubscribablePartitions"] = coordinator.SubscribablePartitions(ctx, s, paths, bad)
		calls["Registrar.AddTopic"] = r.AddTopic(ctx, coordinator.TopicRegistration{Topic: bad, NumPartitions: 1, AcceptPublish: true})
		calls["Registrar.Start"] = r.Start(ctx, []coordinator.TopicRegistration{{Topic: bad, NumPartitions: 1}})
		for call, err := range calls {
			var te *protocol.TopicNameError
			require.Truef(t, errors.As(err, &te), "%s(%q): got %v, want a *protocol.TopicNameError", call, bad, err)
		}
	}
	exists, _, err := s.Exists(ctx, paths.Root)
	require.NoError(t, err)
	require.False(t, exists, "nothing was written for illegal names")
}
