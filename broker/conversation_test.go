package broker_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/protocol"
)

// put builds a put line with a correct checksum.
func putLine(topic string, part int, data string, opaque int) string {
	return fmt.Sprintf("put %s %d %d 0 %d %d\r\n%s", topic, part, len(data), protocol.Checksum([]byte(data)), opaque, data)
}

// TestTelnetConversation is what a person typing into telnet would see for every verb.
func TestTelnetConversation(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	c := brokertest.Dial(t, b.Addr())

	c.Send(t, "version\r\n")
	line, body := c.ReadReply(t)
	require.Equal(t, fmt.Sprintf("result 200 %d 2147483647", len(body)), line)
	require.Contains(t, string(body), "metaq")

	c.Send(t, "version 7\r\n")
	line, _ = c.ReadReply(t)
	require.True(t, strings.HasSuffix(line, " 7"), line)

	// put → 200 "msgId partition offset"; the first message of a partition is at offset 0.
	c.Send(t, putLine("greetings", 0, "hello", 1))
	line, body = c.ReadReply(t)
	require.Regexp(t, `^result 200 \d+ 1$`, line)
	var id int64
	var part, off int64
	_, err := fmt.Sscanf(string(body), "%d %d %d", &id, &part, &off)
	require.NoError(t, err)
	require.Positive(t, id)
	require.Equal(t, int64(0), part)
	require.Equal(t, int64(0), off)

	c.Send(t, putLine("greetings", 0, "world", 2))
	_, body = c.ReadReply(t)
	_, _ = fmt.Sscanf(string(body), "%d %d %d", &id, &part, &off)
	require.Equal(t, int64(20+5), off, "second message starts after the first one's header and data")

	// Legacy 6-token put (no checksum), as the Python/Ruby/.NET clients send.
	c.Send(t, "put greetings 0 6 0 3\r\nlegacy")
	line, body = c.ReadReply(t)
	require.Regexp(t, `^result 200 \d+ 3$`, line)
	require.True(t, strings.HasSuffix(string(body), " 0 50"), string(body))

	// get from 0 returns the message set.
	c.Send(t, "get greetings group1 0 0 1024 4\r\n")
	line, body = c.ReadReply(t)
	require.Equal(t, fmt.Sprintf("value %d 4", 3*20+16), line)
	it := protocol.NewMessageIterator(body)
	var got []string
	for it.Next() {
		got = append(got, string(it.Message().Data))
	}
	require.NoError(t, it.Err())
	require.Equal(t, []string{"hello", "world", "legacy"}, got)

	// Caught up → 404; beyond the end → 404; before the start is impossible at 0.
	c.Send(t, "get greetings group1 0 76 1024 5\r\n")
	line, _ = c.ReadReply(t)
	require.Equal(t, "result 404 0 5", line)
	c.Send(t, "get greetings group1 0 9223372036854775807 1024 6\r\n")
	line, body = c.ReadReply(t)
	require.Equal(t, "result 301 2 6", line, "MaxInt64 asks for the end")
	require.Equal(t, "76", string(body))
	c.Send(t, "get greetings group1 0 0 0 7\r\n")
	line, _ = c.ReadReply(t)
	require.Regexp(t, `^result 400 \d+ 7$`, line)

	// offset inside the second message → its start.
	c.Send(t, "offset greetings group1 0 30 8\r\n")
	line, body = c.ReadReply(t)
	require.Equal(t, "result 200 2 8", line)
	require.Equal(t, "25", string(body))

	// stats and its items.
	for _, item := range []string{"", "topics", "offsets", "realtime", "help", "reset", "greetings"} {
		c.Send(t, "stats "+item+" 9\r\n")
		line, body = c.ReadReply(t)
		require.Regexp(t, `^result 200 \d+ 9$`, line, item)
		lines, err := protocol.ParseStatsBody(body)
		require.NoError(t, err, item)
		require.NotEmpty(t, lines, item)
	}
	c.Send(t, "stats  9\r\n")
	_, body = c.ReadReply(t)
	for _, key := range []string{"pid", "broker_id", "port", "uptime", "version", "slave", "curr_connections", "threads",
		"cmd_put", "cmd_get", "cmd_offset", "tx_begin", "tx_xa_begin", "tx_commit", "tx_rollback", "get_miss",
		"put_failed", "total_messages", "topics", "config_checksum"} {
		require.Contains(t, string(body), "\r\n"+key+" ", "stats must report %s", key)
	}
	c.Send(t, "stats offsets 10\r\n")
	_, body = c.ReadReply(t)
	require.Contains(t, string(body), "greetings part 0 min_offset 0 max_offset 76")
	c.Send(t, "stats config 11\r\n")
	_, body = c.ReadReply(t)
	require.Contains(t, string(body), "brokerId=0")

	// quit closes without a reply.
	c.Send(t, "quit\r\n")
	_, _, err = c.TryReadReply(2e9)
	require.Error(t, err)
}

func TestUnknownVerbClosesWithoutReply(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{})
	c := brokertest.Dial(t, b.Addr())
	c.Send(t, "hello world\r\n")
	line, _, err := c.TryReadReply(2e9)
	require.Error(t, err)
	require.Empty(t, line)
}

func TestPipelinedPutsCarryTheirOpaques(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Partitions: 2})
	c := brokertest.Dial(t, b.Addr())
	var sb strings.Builder
	const n = 500
	for i := 0; i < n; i++ {
		sb.WriteString(putLine("pipe", i%2, fmt.Sprintf("m%04d", i), 1000+i))
	}
	c.Send(t, sb.String())
	seen := map[string]bool{}
	for i := 0; i < n; i++ {
		line, _ := c.ReadReply(t)
		f := strings.Fields(line)
		require.Len(t, f, 4)
		require.Equal(t, "200", f[1], line)
		seen[f[3]] = true
	}
	require.Len(t, seen, n, "every opaque answered exactly once")
}

// TestLongPollGetWakesOnPut: a long-poll get at the end of the log is held
// and answered as soon as a put makes data visible; without data it ends
// with 404 after its wait.
func TestLongPollGetWakesOnPut(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Partitions: 1})
	c := brokertest.Dial(t, b.Addr())
	c.Send(t, "version 1\r\n")
	_, body := c.ReadReply(t)
	require.Contains(t, strings.Fields(string(body)), protocol.LongPollCapability)

	c.Send(t, "get lp g 0 0 1024 100 2\r\n")
	line, _ := c.ReadReply(t)
	require.Regexp(t, `^result 404 \d+ 2$`, line, "nothing arrives within 100 ms")

	c.Send(t, "get lp g 0 0 1024 20000 3\r\n")
	p := brokertest.Dial(t, b.Addr())
	p.Send(t, putLine("lp", 0, "wake up", 1))
	line, _ = p.ReadReply(t)
	require.Regexp(t, `^result 200 `, line)
	line, body = c.ReadReply(t) // well before the 20 s wait ends
	require.Equal(t, fmt.Sprintf("value %d 3", 20+7), line)
	require.Equal(t, "wake up", string(body[20:]))
}

// TestPipelinedPutsToManyPartitionsAnswerEachOnce: puts pipelined over many
// partitions on one connection, whose replies leave coalesced per commit
// cycle, are each answered exactly once, with their own opaque, and each
// partition's offsets grow in the order its puts were sent.
func TestPipelinedPutsToManyPartitionsAnswerEachOnce(t *testing.T) {
	const parts, n = 64, 3000
	b := brokertest.Start(t, brokertest.Options{Partitions: parts})
	c := brokertest.Dial(t, b.Addr())
	c.Send(t, putLine("many", 0, "warm", 1)) // creates the topic
	line, _ := c.ReadReply(t)
	require.Contains(t, line, " 200 ", line)
	for chunk := 0; chunk < n; chunk += 500 {
		var sb strings.Builder
		for i := chunk; i < chunk+500; i++ {
			sb.WriteString(putLine("many", i%parts, fmt.Sprintf("m%05d", i), 10000+i))
		}
		c.Send(t, sb.String())
	}
	seen := map[int]bool{}
	lastOff := map[int32]int64{}
	lastOp := map[int32]int{}
	for range n {
		line, body := c.ReadReply(t)
		f := strings.Fields(line)
		require.Len(t, f, 4, line)
		require.Equal(t, "200", f[1], line)
		op, err := strconv.Atoi(f[3])
		require.NoError(t, err)
		require.False(t, seen[op], "opaque %d answered twice", op)
		seen[op] = true
		_, part, off, err := protocol.ParsePutResult(body)
		require.NoError(t, err)
		require.EqualValues(t, (op-10000)%parts, part, "opaque %d answered for another partition", op)
		if prev, ok := lastOff[part]; ok {
			require.Greater(t, off, prev, "partition %d: offsets out of order", part)
			require.Greater(t, op, lastOp[part], "partition %d: replies out of order", part)
		}
		lastOff[part], lastOp[part] = off, op
	}
	require.Len(t, seen, n, "every opaque answered exactly once")
}
