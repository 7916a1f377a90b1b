package broker_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker/brokertest"
)

// TestGetMisalignedOffsetMovesToNextMessage: a get at an offset inside a
// message is answered like MetaQ answers a wrong offset, 301 with the next
// message's start, never a false "corrupt" 500 the consumer would retry
// forever; a small maxSize does not change that.
func TestGetMisalignedOffsetMovesToNextMessage(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	c := brokertest.Dial(t, b.Addr())
	zeros := string(make([]byte, 40)) // a payload of zeros looks like empty messages
	for i, data := range []string{"hello", zeros, "world"} {
		c.Send(t, putLine("greetings", 0, data, i+1))
		line, _ := c.ReadReply(t)
		require.Regexp(t, `^result 200 \d+ `, line)
	}
	// Messages start at 0, 25 and 85.
	for i, off := range []int{1, 4, 20, 24, 26, 30, 45, 84, 86} {
		next := map[bool]int{true: 25, false: 85}[off < 25]
		if off > 85 {
			next = 110
		}
		for _, maxSize := range []int{8, 1024} {
			opaque := 100 + 2*i + maxSize%2
			c.Send(t, fmt.Sprintf("get greetings group1 0 %d %d %d\r\n", off, maxSize, opaque))
			line, body := c.ReadReply(t)
			require.Equal(t, fmt.Sprintf("result 301 %d %d", len(body), opaque), line, "offset %d maxSize %d", off, maxSize)
			require.Equal(t, fmt.Sprint(next), string(body), "offset %d", off)
		}
	}
	// The boundaries still serve the messages.
	c.Send(t, "get greetings group1 0 25 8 7\r\n")
	line, body := c.ReadReply(t)
	require.Equal(t, "value 60 7", line, "a message larger than maxSize is served whole")
	require.Len(t, body, 60)
}

// TestGetOfTruncatedSegmentFailsOnlyThatPartition shrinks a segment file
// under the running broker (a SIGBUS through the memory map before): the
// get is refused with 503, the partition shows up failed in the snapshot
// (and so on /healthz), the broker and its other partitions keep serving.
func TestGetOfTruncatedSegmentFailsOnlyThatPartition(t *testing.T) {
	dir := t.TempDir()
	b := brokertest.Start(t, brokertest.Options{DataDir: dir})
	c := brokertest.Dial(t, b.Addr())
	for i, part := range []int{0, 1} {
		c.Send(t, putLine("greetings", part, "hello", i+1))
		line, _ := c.ReadReply(t)
		require.Regexp(t, `^result 200 \d+ `, line)
	}
	c.Send(t, "get greetings group1 0 0 1024 3\r\n") // maps the segment
	line, _ := c.ReadReply(t)
	require.Equal(t, "value 25 3", line)
	require.NoError(t, os.Truncate(filepath.Join(dir, "greetings-0", "00000000000000000000.meta"), 0))

	c.Send(t, "get greetings group1 0 0 1024 4\r\n")
	line, body := c.ReadReply(t)
	require.Equal(t, fmt.Sprintf("result 503 %d 4", len(body)), line, string(body))
	require.Contains(t, string(body), "partition unavailable")
	var failed []string
	for _, p := range b.Snapshot().Partitions {
		if p.Err != "" {
			failed = append(failed, fmt.Sprintf("%s-%d", p.Topic, p.Partition))
		}
	}
	require.Equal(t, []string{"greetings-0"}, failed)
	require.Len(t, b.Store().FailedPartitions(), 1)

	c.Send(t, "get greetings group1 1 0 1024 5\r\n")
	line, _ = c.ReadReply(t)
	require.Equal(t, "value 25 5", line, "the other partition still serves")
}
