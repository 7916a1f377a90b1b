package compattest_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/protocol"
)

// javaStats sends `stats <item>` and parses the body the way MetaQ 1.4's
// Java client does (MetaMessageSessionFactory.getStats → parseStatsValues
// into a StatsResult): split on CRLF, key up to the first space, the rest
// the value, a line without a space maps to "NO VALUE"; a later line with
// the same key wins.
func javaStats(t *testing.T, c *metaqConn, item string) map[string]string {
	t.Helper()
	r := c.call(&protocol.StatsRequest{Item: item, OpaqueID: c.nextOpaque()})
	requireCode(t, protocol.CodeOK, r)
	values := map[string]string{}
	for _, line := range strings.Split(string(r.Body), "\r\n") {
		if i := strings.Index(line, " "); i > 0 {
			values[line[:i]] = line[i+1:]
		} else {
			values[line] = "NO VALUE"
		}
	}
	return values
}

// realtimeValue reads a realtime item as RealTimeStatsProber.alertIfNeed
// does: the second comma-separated field ("Value=<n>"), its number after '='.
// It also checks the item has MetaStatLog.formatOutput's five fields.
func realtimeValue(t *testing.T, v string) int64 {
	t.Helper()
	fields := strings.Split(v, ",")
	require.Len(t, fields, 5, "realtime value %q", v)
	for i, name := range []string{"Count", "Value", "Value/Count", "Count/Duration", "Duration"} {
		require.True(t, strings.HasPrefix(fields[i], name+"="), "realtime value %q field %d", v, i)
	}
	n, err := strconv.ParseInt(strings.SplitN(fields[1], "=", 2)[1], 10, 32) // Integer.valueOf
	require.NoError(t, err, "realtime value %q", v)
	return n
}

// realtimeCount is the Count= field of a realtime item.
func realtimeCount(t *testing.T, v string) int64 {
	t.Helper()
	realtimeValue(t, v)
	n, err := strconv.ParseInt(strings.TrimPrefix(strings.Split(v, ",")[0], "Count="), 10, 64)
	require.NoError(t, err, "realtime value %q", v)
	return n
}

// TestStatsItemsParseLikeMetaQTools sends every `stats` variant and reads it
// as MetaQ's Java client (MetaMessageSessionFactory.parseStatsValues) and its
// monitor (RealTimeStatsProber) do; the keys and value layouts are those of
// MetaQ's StatsManager (getStatsInfo, appendTopic, appendTopicsInfo,
// appendOffsetInfo, appendRealTime) and BrokerCommandProcessor.processStatsConfig.
func TestStatsItemsParseLikeMetaQTools(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Partitions: 1, Modify: func(o *broker.Options) {
		o.Topics = []string{"st"}
		o.Topic = func(name string) (broker.TopicConfig, bool) { // "auto-*" accepted, never written
			return broker.TopicConfig{NumPartitions: 1, AcceptPublish: true, AcceptSubscribe: true}, name == "st" || strings.HasPrefix(name, "auto-")
		}
	}})
	c := dialMetaQ(t, b.Addr())
	for _, m := range []string{"one", "two", "six"} {
		requireCode(t, protocol.CodeOK, c.put("st", 0, []byte(m)))
	}
	bad := []byte("bad")
	requireCode(t, protocol.CodeInternal, c.call(&protocol.PutRequest{Topic: "st", Data: bad,
		Checksum: protocol.Checksum(bad) ^ 1, OpaqueID: c.nextOpaque()})) // a put_failed
	hit := c.get("st", "g", 0, 0, 1<<20)
	require.Equal(t, protocol.VerbValue, hit.Verb)
	end := int64(3 * (protocol.MessageHeaderSize + 3))
	requireCode(t, protocol.CodeNotFound, c.get("st", "g", 0, end, 1<<20)) // a get_miss
	requireCode(t, protocol.CodeOK, c.call(&protocol.OffsetRequest{Topic: "st", Group: "g", Offset: 0, OpaqueID: c.nextOpaque()}))

	general := javaStats(t, c, "")
	for _, k := range []string{"pid", "broker_id", "port", "uptime", "version", "slave", "curr_connections", "threads",
		"cmd_put", "cmd_get", "cmd_offset", "tx_begin", "tx_xa_begin", "tx_commit", "tx_rollback", "get_miss",
		"put_failed", "total_messages", "topics", "config_checksum"} {
		require.Contains(t, general, k)
	}
	require.Equal(t, "NO VALUE", general["STATS"])
	require.Equal(t, "NO VALUE", general["END"])
	require.Equal(t, "3", general["total_messages"])
	require.Equal(t, "2", general["cmd_get"])
	require.Equal(t, "1", general["get_miss"])
	require.Equal(t, "1", general["put_failed"])
	require.Equal(t, "false", general["slave"])

	topics := javaStats(t, c, "topics")
	require.Equal(t, "partitions 1 message_count 3 message_bytes "+strconv.FormatInt(end, 10)+
		" accept_publish true accept_subscribe true", topics["st"])

	offsets := javaStats(t, c, "offsets")
	require.Equal(t, "part 0 min_offset 0 max_offset "+strconv.FormatInt(end, 10), offsets["st"])

	rt := javaStats(t, c, "realtime")
	// put and get add 1 per request to Count and Value (a failed put is a
	// put too: MetaQ's statsPut comes before the store); message_size adds
	// the data length of the stored ones.
	require.EqualValues(t, 4, realtimeValue(t, rt["realtime_put"]))
	require.EqualValues(t, 2, realtimeValue(t, rt["realtime_get"]))
	require.EqualValues(t, 1, realtimeValue(t, rt["realtime_offset"]))
	require.EqualValues(t, 1, realtimeValue(t, rt["realtime_get_miss"]))
	require.EqualValues(t, 1, realtimeValue(t, rt["realtime_put_failed"]))
	require.EqualValues(t, 9, realtimeValue(t, rt["realtime_message_size"]))
	require.Contains(t, rt["realtime_message_size"], ",Value/Count=3,", "DecimalFormat(\"#.##\") prints 3, not 3.00")

	topic := javaStats(t, c, "st")
	require.Equal(t, "NO VALUE", topic["st"], "the topic alone on the first line")
	require.Equal(t, "0", topic["resultCode"])
	require.Equal(t, "1", topic["partitions"])
	require.Equal(t, "3", topic["message_count"])
	require.Equal(t, strconv.FormatInt(end, 10), topic["bytes"])
	require.EqualValues(t, 4, realtimeValue(t, topic["topic_realtime_put"]))
	require.EqualValues(t, 2, realtimeValue(t, topic["topic_realtime_get"]))
	require.EqualValues(t, 1, realtimeValue(t, topic["topic_realtime_offset"]))
	require.EqualValues(t, 1, realtimeValue(t, topic["topic_realtime_get_miss"]))
	require.EqualValues(t, 1, realtimeValue(t, topic["topic_realtime_put_failed"]))
	require.EqualValues(t, 9, realtimeValue(t, topic["topic_realtime_message_size"]))

	// A name that is no topic of this broker: resultCode 1, all zero.
	none := javaStats(t, c, "nosuch")
	require.Equal(t, "1", none["resultCode"])
	require.Equal(t, "0", none["message_count"])
	require.Contains(t, none["topic_realtime_put"], "Value/Count=invalid", "no puts: MetaStatLog's \"invalid\" average")
	require.Equal(t, "2", javaStats(t, c, "auto-x")["resultCode"], "accepted, no partition yet")

	// reset clears the realtime items, broker-wide and per topic.
	require.Equal(t, "ok", javaStats(t, c, "reset")["reset"])
	require.Zero(t, realtimeCount(t, javaStats(t, c, "realtime")["realtime_put"]))
	require.Zero(t, realtimeCount(t, javaStats(t, c, "st")["topic_realtime_put"]))

	help := javaStats(t, c, "help")
	for _, k := range []string{"help", "topics", "offsets", "realtime", "config"} {
		require.Contains(t, help, k)
	}

	// config: the raw file, no STATS/END (the dashboard's MetaConfig.loadFromString reads it).
	r := c.call(&protocol.StatsRequest{Item: "config", OpaqueID: c.nextOpaque()})
	requireCode(t, protocol.CodeOK, r)
	require.Contains(t, string(r.Body), "brokerId=")
	require.NotContains(t, string(r.Body), "STATS")
}
