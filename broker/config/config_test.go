package config

import (
	"errors"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const minimalINI = "[system]\nbrokerId=1\n[zookeeper]\nzk.zkConnect=127.0.0.1:2181\n"

func mustParse(t *testing.T, text string) *Config {
	t.Helper()
	c, err := Parse([]byte(text), "ini", WithoutEnv())
	require.NoError(t, err)
	return c
}

func TestMetaQSampleLoadsUnchanged(t *testing.T) {
	c, err := Load("testdata/metaq_server.ini", WithoutEnv())
	require.NoError(t, err)

	b := c.Broker()
	assert.Equal(t, 7, b.BrokerID)
	assert.Equal(t, "10.1.2.3", b.HostName)
	assert.Equal(t, "/var/lib/meta", b.DataPath)
	assert.Equal(t, "/var/lib/meta", b.DataLogPath, "empty dataLogPath defaults to dataPath")
	assert.Equal(t, int64(1<<30), b.MaxSegmentSize, "1024*1024*1024 is evaluated like Aviator does")
	assert.Equal(t, DefaultMaxMessageSize+MessageHeaderSize, b.MaxTransferSize, "raised to fit the largest message")
	assert.Equal(t, TxLogFsyncOnCommit, b.FlushTxLogAtCommit)
	assert.Equal(t, time.Minute, b.MaxTxTimeout)

	z := c.ZooKeeper()
	assert.Equal(t, ZooKeeper{Enable: true, Connect: "zk1:2181,zk2:2181,zk3:2181", Root: "/meta",
		SessionTimeout: 30 * time.Second, ConnectionTimeout: 30 * time.Second, SyncTime: 5 * time.Second,
		StaleNodeGrace: DefaultZkStaleNodeGrace}, z)

	d := c.Defaults()
	assert.Equal(t, 2, d.NumPartitions)
	assert.Equal(t, 1000, d.UnflushThreshold)
	assert.False(t, d.GroupCommit())

	assert.Equal(t, []string{"meta-test", "test"}, c.Topics())
	test, ok := c.Topic("test")
	require.True(t, ok)
	assert.Equal(t, 10, test.NumPartitions)
	assert.Equal(t, d.DeletePolicy, test.DeletePolicy, "empty deletePolicy= means the system policy")
	assert.Equal(t, d.UnflushThreshold, test.UnflushThreshold)

	raw, _ := os.ReadFile("testdata/metaq_server.ini")
	assert.Equal(t, raw, c.Raw())
	assert.Equal(t, crc32.ChecksumIEEE(raw), c.Checksum())
	assert.Contains(t, c.Warnings(), "metaq_server.ini [system]: getProcessThreadCount is a MetaQ-only setting and is ignored")
}

func TestFormatsProduceEqualConfig(t *testing.T) {
	ini, err := Load("testdata/metaq_server.ini", WithoutEnv())
	require.NoError(t, err)
	for _, path := range []string{"testdata/server.yaml", "testdata/server.toml"} {
		t.Run(filepath.Ext(path), func(t *testing.T) {
			c, err := Load(path, WithoutEnv())
			require.NoError(t, err)
			assert.Equal(t, ini.Broker(), c.Broker())
			assert.Equal(t, ini.ZooKeeper(), c.ZooKeeper())
			assert.Equal(t, ini.Defaults(), c.Defaults())
			assert.Equal(t, ini.Topics(), c.Topics())
			assert.Equal(t, ini.wildcards, c.wildcards)
			for _, name := range []string{"test", "meta-test", "logs.app", "other", "bad/name"} {
				want, wantOK := ini.Topic(name)
				got, gotOK := c.Topic(name)
				assert.Equal(t, wantOK, gotOK, name)
				assert.Equal(t, want, got, name)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	c := mustParse(t, minimalINI)
	home, err := os.UserHomeDir()
	require.NoError(t, err)
	b := c.Broker()
	assert.Equal(t, DefaultServerPort, b.ServerPort)
	assert.NotEmpty(t, b.HostName)
	assert.Equal(t, filepath.Join(home, "meta"), b.DataPath)
	assert.Equal(t, b.DataPath, b.DataLogPath)
	assert.Equal(t, int64(DefaultMaxSegmentSize), b.MaxSegmentSize)
	assert.Equal(t, DefaultMaxMessageSize, b.MaxMessageSize)
	assert.Equal(t, DefaultMaxMessageSize+MessageHeaderSize, b.MaxTransferSize)
	assert.Empty(t, c.Warnings(), "the default maxTransferSize is raised without a warning")
	assert.Equal(t, DefaultMaxConnections, b.MaxConnections)
	assert.Equal(t, DefaultMaxLineLength, b.MaxLineLength)
	assert.True(t, b.Multicore)
	assert.False(t, b.AutoCreateTopics)
	assert.Equal(t, time.Minute, b.RetentionCheckInterval)
	assert.Equal(t, DefaultMaxConnectionsPerIP, b.MaxConnectionsPerIP)
	assert.Equal(t, 30*time.Second, b.PartialRequestTimeout)
	assert.Equal(t, int64(64<<20), b.MaxConnOutputBytes)
	assert.Equal(t, int64(1<<30), b.MaxTotalOutputBytes)
	assert.Equal(t, 16, b.ReadWorkers)

	d := c.Defaults()
	assert.Equal(t, 1, d.NumPartitions)
	assert.True(t, d.GroupCommit())
	assert.Equal(t, 10*time.Second, d.UnflushInterval)
	assert.Equal(t, DeletePolicy{Action: PolicyDelete, MaxAge: 168 * time.Hour, Text: "delete,168"}, d.DeletePolicy)
	assert.Equal(t, DefaultDeleteWhen, d.DeleteWhen.String())
	assert.True(t, d.AcceptPublish && d.AcceptSubscribe)

	assert.Equal(t, "/meta", c.ZooKeeper().Root)
	assert.Empty(t, c.Topics())
	_, ok := c.Topic("anything")
	assert.False(t, ok, "no section, no autoCreateTopics")
}

func TestTopicResolution(t *testing.T) {
	c := mustParse(t, minimalINI+`
[topic=orders]
numPartitions=3
[topic=orders.*]
numPartitions=4
[topic=orders.eu.*]
numPartitions=5
[topic=*]
numPartitions=6
[topic=*s.*]
numPartitions=7
`)
	tests := []struct {
		scenario, topic, section string
		partitions               int
	}{
		{"exact section wins over every wildcard", "orders", "topic=orders", 3},
		{"longest literal prefix wins", "orders.eu.fr", "topic=orders.eu.*", 5},
		{"shorter wildcard when the longer does not match", "orders.us", "topic=orders.*", 4},
		{"more literal characters beat fewer stars", "items.x", "topic=*s.*", 7},
		{"catch-all last", "clicks", "topic=*", 6},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			tc, ok := c.Topic(tt.topic)
			require.True(t, ok)
			assert.Equal(t, tt.topic, tc.Name)
			assert.Equal(t, tt.section, tc.Section)
			assert.Equal(t, tt.partitions, tc.NumPartitions)
		})
	}
	for _, bad := range []string{"../etc", ".", ".."} {
		_, ok := c.Topic(bad)
		assert.False(t, ok, "an illegal name %q never resolves, not even through [topic=*]", bad)
	}
	assert.Equal(t, []string{"orders"}, c.Topics())
}

func TestAutoCreateTopics(t *testing.T) {
	c := mustParse(t, "[system]\nbrokerId=1\nautoCreateTopics=true\nnumPartitions=4\n[zookeeper]\nzk.zkEnable=false\n")
	tc, ok := c.Topic("fresh")
	require.True(t, ok)
	assert.Equal(t, "fresh", tc.Name)
	assert.Equal(t, "system", tc.Section)
	assert.Equal(t, 4, tc.NumPartitions)
}

func TestEnvOverrides(t *testing.T) {
	t.Setenv("METAQ_SYSTEM_SERVERPORT", "9000")
	t.Setenv("METAQ_SYSTEM_NUMPARTITIONS", "8")
	t.Setenv("METAQ_ZOOKEEPER_ZKCONNECT", "zk9:2181")
	t.Setenv("METAQ_SYSTEM_HOSTNAME", "") // empty variables are ignored
	c, err := Parse([]byte("[system]\nbrokerId=1\nhostName=h1\n[zookeeper]\nzk.zkConnect=a:1\n"), "ini")
	require.NoError(t, err)
	assert.Equal(t, "h1", c.Broker().HostName)
	assert.Equal(t, 9000, c.Broker().ServerPort)
	assert.Equal(t, 8, c.Defaults().NumPartitions)
	assert.Equal(t, "zk9:2181", c.ZooKeeper().Connect)

	t.Run("env fills a required key the file lacks", func(t *testing.T) {
		t.Setenv("METAQ_SYSTEM_BROKERID", "12")
		c, err := Parse([]byte("[zookeeper]\nzk.zkEnable=false\n"), "ini")
		require.NoError(t, err)
		assert.Equal(t, 12, c.Broker().BrokerID)
	})
	t.Run("a bad env value names the variable", func(t *testing.T) {
		t.Setenv("METAQ_SYSTEM_BROKERID", "abc")
		_, err := Parse([]byte(minimalINI), "ini")
		assert.ErrorIs(t, err, ErrBadValue)
		assert.EqualError(t, err, `config: [system] brokerId: "abc" (from METAQ_SYSTEM_BROKERID) is not an integer 0..1023`)
	})
	t.Run("a misspelt variable is an unknown key", func(t *testing.T) {
		t.Setenv("METAQ_SYSTEM_SEVERPORT", "1")
		_, err := Parse([]byte(minimalINI), "ini")
		assert.ErrorIs(t, err, ErrUnknownKey)
		assert.EqualError(t, err, "config: unknown environment variable METAQ_SYSTEM_SEVERPORT (did you mean METAQ_SYSTEM_SERVERPORT?)")
	})
	t.Run("custom prefix", func(t *testing.T) {
		t.Setenv("BROKER_SYSTEM_SERVERPORT", "9100")
		c, err := Parse([]byte(minimalINI), "ini", WithEnvPrefix("broker"))
		require.NoError(t, err)
		assert.Equal(t, 9100, c.Broker().ServerPort)
	})
	t.Run("WithoutEnv ignores the environment", func(t *testing.T) {
		c, err := Parse([]byte(minimalINI), "ini", WithoutEnv())
		require.NoError(t, err)
		assert.Equal(t, DefaultServerPort, c.Broker().ServerPort)
	})
}

func TestUnknownKeys(t *testing.T) {
	tests := []struct {
		scenario, text, want string
	}{
		{"typo in system", "[system]\nbrokerId=1\nseverPort=1\n",
			`config: server.ini [system]: unknown key "severPort" (did you mean "serverPort"?)`},
		{"zk key without prefix", "[system]\nbrokerId=1\n[zookeeper]\nzkConnect=x:1\n",
			`config: server.ini [zookeeper]: unknown key "zkConnect" (did you mean "zk.zkConnect"?)`},
		{"system key in a topic", "[system]\nbrokerId=1\n[topic=a]\nserverPort=1\n",
			`config: server.ini [topic=a]: unknown key "serverPort" (serverPort belongs in [system])`},
		{"typo in topic", "[system]\nbrokerId=1\n[topic=a]\nnumPartition=2\n",
			`config: server.ini [topic=a]: unknown key "numPartition" (did you mean "numPartitions"?)`},
		{"nothing close", "[system]\nbrokerId=1\nqwertyuiopasdf=1\n",
			`config: server.ini [system]: unknown key "qwertyuiopasdf"`},
		{"unknown section", "[sytem]\nbrokerId=1\n",
			`config: server.ini: unknown section [sytem] (did you mean [system]?)`},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			_, err := Parse([]byte(tt.text), "ini", WithoutEnv())
			require.ErrorIs(t, err, ErrUnknownKey)
			assert.EqualError(t, err, tt.want)
		})
	}
}

func TestBadValues(t *testing.T) {
	tests := []struct {
		scenario, text, want string
		sentinel             error
	}{
		{"brokerId not a number", "[system]\nbrokerId=abc\n",
			`config: [system] brokerId: "abc" is not an integer 0..1023`, ErrBadValue},
		{"brokerId out of range", "[system]\nbrokerId=1024\n",
			`config: [system] brokerId: "1024" is not an integer 0..1023`, ErrBadValue},
		{"brokerId missing", "[system]\nbrokerId=\n",
			`config: [system] brokerId: missing; set it to an integer 0..1023, unique in the cluster`, ErrMissing},
		{"zkConnect missing", "[system]\nbrokerId=1\n",
			`config: [zookeeper] zk.zkConnect: missing; set it to "host:port[,host:port...]" or set zk.zkEnable=false`, ErrMissing},
		{"bad boolean", minimalINI + "[topic=a]\nstat=yes please\n",
			`config: [topic=a] stat: "yes please" is not a boolean (true or false)`, ErrBadValue},
		{"bad policy", "[system]\nbrokerId=1\ndeletePolicy=remove,1\n",
			`config: [system] deletePolicy: "remove,1" is not a delete policy: expected delete,<N>[s|m|h] or archive,<N>[s|m|h][,true]`, ErrBadValue},
		{"bad cron", "[system]\nbrokerId=1\ndeleteWhen=0 0 25 * * ?\n",
			`config: [system] deleteWhen: "0 0 25 * * ?" is not a Quartz cron expression: hours: "25": want 0..23`, ErrBadValue},
		{"flushTxLogAtCommit out of range", "[system]\nbrokerId=1\nflushTxLogAtCommit=3\n",
			`config: [system] flushTxLogAtCommit: "3" is not an integer 0..2`, ErrBadValue},
		{"maxLineLength too small for legal requests", "[system]\nbrokerId=1\nmaxLineLength=100\n",
			`config: [system] maxLineLength: "100" is not an integer 1024..1048576`, ErrBadValue},
		{"zkRoot relative", "[system]\nbrokerId=1\n[zookeeper]\nzk.zkConnect=a:1\nzk.zkRoot=meta\n",
			`config: [zookeeper] zk.zkRoot: "meta" is not an absolute ZooKeeper path like /meta (no trailing '/')`, ErrBadValue},
		{"topic name with a slash", "[system]\nbrokerId=1\n[topic=a/b]\n",
			`config: [topic=a/b]: invalid topic name "a/b": it has '/' at byte 1; a topic name is 1-255 ASCII letters, digits, '.', '_' or '-', and not "." or ".."`, ErrBadValue},
		{"topic section for the parent directory", "[system]\nbrokerId=1\n[topic=..]\n",
			`config: [topic=..]: invalid topic name "..": it is a relative path component; a topic name is 1-255 ASCII letters, digits, '.', '_' or '-', and not "." or ".."`, ErrBadValue},
		{"adminPort clashes", minimalINI[:len("[system]\nbrokerId=1\n")] + "adminPort=8123\n" + "[zookeeper]\nzk.zkEnable=false\n",
			`config: [system] adminPort: 8123 is also serverPort; use another port or 0 (off)`, ErrBadValue},
		{"key outside a section", "brokerId=1\n",
			`config: server.ini:1: key "brokerId" outside any section (start with [system])`, ErrBadValue},
		{"repeated section", "[system]\nbrokerId=1\n[system]\n",
			`config: server.ini:3: section [system] repeats line 1; merge the two`, ErrBadValue},
		{"not key=value", "[system]\nbrokerId 1\n",
			`config: server.ini:2: expected key=value, a [section] header or a ; comment, got "brokerId 1"`, ErrBadValue},
		{"unknown format", "", `config: server.xml: unsupported format "xml"; use ini, yaml, toml or json`, ErrBadValue},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			format := "ini"
			if tt.scenario == "unknown format" {
				format = "xml"
			}
			_, err := Parse([]byte(tt.text), format, WithoutEnv())
			require.ErrorIs(t, err, tt.sentinel)
			assert.EqualError(t, err, tt.want)
		})
	}
}

func TestMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "server.ini"))
	require.ErrorIs(t, err, ErrMissing)
	assert.ErrorIs(t, err, fs.ErrNotExist)
	assert.Contains(t, err.Error(), "conf/server.ini")
	var ce *Error
	require.True(t, errors.As(err, &ce))
}

func TestINIDialect(t *testing.T) {
	c := mustParse(t, "\xef\xbb\xbf# comment\r\n; comment\r\n[System] ; trailing\r\nBROKERID : 3\r\nbrokerId=4\r\n"+
		"[zookeeper]\r\nzk.zkConnect=a:1,b:2/chroot\r\n[topic=x]\r\n")
	assert.Equal(t, 4, c.Broker().BrokerID, "the last repeated key wins, keys match case-insensitively")
	assert.Len(t, c.Warnings(), 1)
	assert.Equal(t, "a:1,b:2/chroot", c.ZooKeeper().Connect)
	assert.Equal(t, []string{"x"}, c.Topics())
}

func TestMaxTransferSizeRaisedWithWarning(t *testing.T) {
	c := mustParse(t, "[system]\nbrokerId=1\nmaxMessageSize=1000\nmaxTransferSize=500\n[zookeeper]\nzk.zkEnable=false\n")
	assert.Equal(t, 1020, c.Broker().MaxTransferSize)
	require.Len(t, c.Warnings(), 1)
	assert.Contains(t, c.Warnings()[0], "maxTransferSize 500")
}

func TestAccessorsReturnCopies(t *testing.T) {
	c := mustParse(t, minimalINI+"[topic=a]\n")
	c.Raw()[0] = 'X'
	c.Topics()[0] = "changed"
	assert.Equal(t, byte('['), c.Raw()[0])
	assert.Equal(t, []string{"a"}, c.Topics())
}

func TestEvalInt(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"8123", 8123, true},
		{" 1024 * 1024 * 1024 ", 1 << 30, true},
		{"(1+2)*3 - -1", 10, true},
		{"10/3", 3, true},
		{"7%4", 3, true},
		{"-5", -5, true},
		{"1/0", 0, false},
		{"9223372036854775807+1", 0, false},
		{"abc", 0, false},
		{"1 2", 0, false},
		{"", 0, false},
		{"(((1", 0, false},
	}
	for _, tt := range tests {
		got, err := evalInt(tt.in)
		if tt.ok {
			assert.NoError(t, err, tt.in)
			assert.Equal(t, tt.want, got, tt.in)
		} else {
			assert.Error(t, err, tt.in)
		}
	}
}

func TestEnvVarNames(t *testing.T) {
	assert.Equal(t, "METAQ_SYSTEM_SERVERPORT", EnvVar("METAQ", "system", "serverPort"))
	assert.Equal(t, "METAQ_ZOOKEEPER_ZKCONNECT", EnvVar("METAQ", "zookeeper", "zk.zkConnect"))
	assert.Equal(t, "SYSTEM_BROKERID", EnvVar("", "system", "brokerId"))
}

func TestServerLimitKeys(t *testing.T) {
	sys := func(keys string) string {
		return "[system]\nbrokerId=1\n" + keys + "[zookeeper]\nzk.zkConnect=127.0.0.1:2181\n"
	}
	c := mustParse(t, sys(`
maxConnectionsPerIp=0
partialRequestTimeoutMs=1500
maxConnectionOutputBytes=8*1024*1024
maxTotalOutputBytes=256*1024*1024
readWorkers=4
`))
	b := c.Broker()
	assert.Equal(t, 0, b.MaxConnectionsPerIP, "0 = unlimited")
	assert.Equal(t, 1500*time.Millisecond, b.PartialRequestTimeout)
	assert.Equal(t, int64(8<<20), b.MaxConnOutputBytes)
	assert.Equal(t, int64(256<<20), b.MaxTotalOutputBytes)
	assert.Equal(t, 4, b.ReadWorkers)

	for _, bad := range []string{"readWorkers=0", "maxConnectionOutputBytes=1024", "partialRequestTimeoutMs=0"} {
		_, err := Parse([]byte(sys(bad+"\n")), "ini", WithoutEnv())
		assert.Error(t, err, bad)
	}
}

func TestTopicDataPathsAndStaleNodeGrace(t *testing.T) {
	c := mustParse(t, `[system]
brokerId=1
dataPath=/data/main
[zookeeper]
zk.zkConnect=127.0.0.1:2181
zk.zkStaleNodeGraceMs=0
[topic=a]
dataPath=/data/a
[topic=b]
dataPath=/data/main
[topic=c*]
dataPath=/data/c
[topic=d]
dataPath=/data/a
[topic=e]
`)
	assert.Equal(t, []string{"/data/a", "/data/c"}, c.TopicDataPaths(), "distinct, sorted, without [system] dataPath")
	tc, ok := c.Topic("c1")
	require.True(t, ok)
	assert.Equal(t, "/data/c", tc.DataPath)
	assert.Equal(t, time.Duration(0), c.ZooKeeper().StaleNodeGrace, "0 = no wait")
}
