package consumer_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/consumer"
	"github.com/metaq-go/metaq/protocol"
)

// TestMaxFetchBytesCapFollowsTheBrokerDefault: the fetch-size cap is
// derived from the broker's default maxMessageSize (2 MiB), not from the
// decoder's 4 MiB default, and WithMaxFetchBytes is bounded by it.
func TestMaxFetchBytesCapFollowsTheBrokerDefault(t *testing.T) {
	require.Equal(t, 2*(protocol.MetaQClientMaxMessageSize+protocol.MessageHeaderSize), consumer.MaxFetchBytesCap)
	_, err := consumer.New("g", consumer.WithMaxFetchBytes(consumer.MaxFetchBytesCap+1))
	require.ErrorContains(t, err, "WithMaxFetchBytes")
}
