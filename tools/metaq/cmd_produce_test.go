package main

import (
	"bytes"
	"context"
	"encoding/json"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

// produceCLI runs the metaq command line in-process with stdin.
func produceCLI(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := newRootCmd()
	var out, errOut bytes.Buffer
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := cmd.ExecuteContext(ctx)
	if err != nil {
		t.Logf("stderr: %s", errOut.String())
	}
	return out.String(), err
}

func TestProduceCommandPrintsPartitionAndOffsetPerLine(t *testing.T) {
	root := "/metaq-cli-produce-" + time.Now().Format("150405.000000")
	zk := zktest.Shared(t).Addr
	brokertest.Start(t, brokertest.Options{BrokerID: 3, ZK: zk, ZKRoot: root, Partitions: 2,
		Modify: func(o *broker.Options) { o.Topics = []string{"cli"} }})
	out, err := produceCLI(t, "one\ntwo\nthree\n", "produce", "--zk", zk, "--zk-root", root, "--topic", "cli")
	require.NoError(t, err)
	require.Equal(t, "partition 3-0 offset 0\npartition 3-1 offset 0\npartition 3-0 offset 23\n", out)

	out, err = produceCLI(t, "k1\nk2\n", "produce", "--zk", zk, "--zk-root", root, "--topic", "cli", "--key", "user", "-o", "json")
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 2)
	var a, b produceLine
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &a))
	require.NoError(t, json.Unmarshal([]byte(lines[1]), &b))
	require.Equal(t, a.Partition, b.Partition, "one key, one partition")
	require.Less(t, a.Offset, b.Offset)
}

func TestProduceCommandDirectModeAndErrors(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Partitions: 1})
	out, err := produceCLI(t, "x\n", "produce", "--broker", b.Addr(), "--topic", "direct")
	require.NoError(t, err)
	require.Equal(t, "partition 0-0 offset 0\n", out)

	_, err = produceCLI(t, "x\n", "produce", "--broker", b.Addr(), "--topic", "bad/topic")
	require.ErrorContains(t, err, "1 of 1 messages failed")
	_, err = produceCLI(t, "", "produce", "--broker", b.Addr())
	require.Equal(t, exitUsage, exitCode(err))
}

func TestBenchProducePrintsOneJSONObject(t *testing.T) {
	b := brokertest.Start(t, brokertest.Options{Partitions: 2})
	out, err := produceCLI(t, "", "bench", "produce", "--broker", b.Addr(), "--partitions", "2",
		"--topic", "bench", "--messages", "2000", "--size", "64", "--connections", "2", "--json")
	require.NoError(t, err)
	var r map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &r), out)
	for _, k := range []string{"messages", "msgs_per_s", "mb_per_s", "p50_us", "p99_us", "cpu_us_per_msg", "gomaxprocs"} {
		require.Contains(t, r, k)
	}
	require.EqualValues(t, runtime.GOMAXPROCS(0), r["gomaxprocs"])
	require.EqualValues(t, 2000, r["messages"])
	require.EqualValues(t, 0, r["failed"])
	require.Positive(t, r["msgs_per_s"])
	require.Positive(t, r["p99_us"])

	out, err = produceCLI(t, "", "bench", "produce", "--broker", b.Addr(), "--topic", "bench", "--messages", "100")
	require.NoError(t, err)
	require.Contains(t, out, "MSGS/S")
}
