package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/broker/store"
)

// stoppedBrokerData puts messages into a broker, shuts it down cleanly and
// returns its data directory.
func stoppedBrokerData(t *testing.T) string {
	dir := t.TempDir()
	b := brokertest.Start(t, brokertest.Options{DataDir: dir, Partitions: 1})
	opsPut(t, b.Addr(), "events", 0, 4, "payload") // 4 × (20 + 9) bytes
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestSegmentsVerifyFindsBitFlip(t *testing.T) {
	dir := stoppedBrokerData(t)
	part := filepath.Join(dir, "events-0")
	seg := filepath.Join(part, "00000000000000000000.meta")

	out := mustMetaq(t, "segments", "verify", dir)
	if !strings.Contains(out, "ok: 1 segments, no corruption") || !strings.Contains(out, "events-0") {
		t.Fatalf("clean verify:\n%s", out)
	}
	var msgs []dumpedMessage
	mustMetaqJSON(t, &msgs, "segments", "dump", part)
	if len(msgs) != 4 || msgs[2].Offset != 58 || !msgs[2].CRCOK || msgs[2].Size != 9 || msgs[3].ID <= msgs[2].ID {
		t.Fatalf("dump: %+v", msgs)
	}

	// Flip one bit in the put data of the third message (offset 58).
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	data[58+store.HeaderSize+3] ^= 0x10
	if err := os.WriteFile(seg, data, 0o644); err != nil {
		t.Fatal(err)
	}

	r := runMetaq(t, "segments", "verify", dir)
	if r.code != exitCheck {
		t.Fatalf("verify after bit flip: exit %d, want %d\n%s", r.code, exitCheck, r.out)
	}
	msg := r.err.Error()
	if !strings.Contains(msg, seg) || !strings.Contains(msg, "at offset 58") || !strings.Contains(msg, "checksum") {
		t.Errorf("error should name the file and offset: %v", msg)
	}
	if !strings.Contains(r.out, "corrupt") {
		t.Errorf("table should mark the segment corrupt:\n%s", r.out)
	}
	r = runMetaq(t, "segments", "verify", part, "-o", "json")
	var res verifyResult
	if err := json.Unmarshal([]byte(r.out), &res); err != nil || r.code != exitCheck || res.OK || res.Segments[0].Valid != 58 {
		t.Errorf("verify -o json: exit %d, %v, %+v", r.code, err, res)
	}

	r = runMetaq(t, "segments", "dump", seg, "--payload", "16")
	if r.code != exitCheck || !strings.Contains(r.err.Error(), "at offset 58: checksum mismatch") {
		t.Fatalf("dump after bit flip: exit %d, %v", r.code, r.err)
	}
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "OFFSET") || !strings.Contains(lines[3], " no ") || !strings.Contains(lines[2], `"payload-1"`) {
		t.Errorf("dump table:\n%s", r.out)
	}
	if out := mustMetaq(t, "segments", "dump", part, "--limit", "2", "-o", "json"); strings.Count(out, `"offset"`) != 2 {
		t.Errorf("--limit 2:\n%s", out)
	}
}

func TestSegmentsTornTailIsNotCorruption(t *testing.T) {
	dir := stoppedBrokerData(t)
	seg := filepath.Join(dir, "events-0", "00000000000000000000.meta")
	f, err := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0, 0, 0, 9, 1, 2}) // half a header: an unclean shutdown
	f.Close()
	out := mustMetaq(t, "segments", "verify", dir)
	if !strings.Contains(out, "torn tail") || !strings.Contains(out, "offset 116") {
		t.Errorf("torn tail:\n%s", out)
	}
	if strings.Contains(out, "commit log") {
		t.Errorf("no commit log is pending:\n%s", out)
	}

	// A commit log left by an unclean stop is named: the next start writes
	// it back first, so the torn tail may yet be restored.
	if err := os.WriteFile(filepath.Join(dir, "commit-00000000000000000001.log"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	out = mustMetaq(t, "segments", "verify", dir)
	if !strings.Contains(out, "1 commit log file(s) not yet replayed") || !strings.Contains(out, "commit-00000000000000000001.log") {
		t.Errorf("pending commit log not reported:\n%s", out)
	}
}

func TestSegmentsUsage(t *testing.T) {
	dir := t.TempDir()
	if r := runMetaq(t, "segments", "verify", dir); r.code != exitFailure || !strings.Contains(r.err.Error(), "dataPath") {
		t.Errorf("empty dir: exit %d, %v", r.code, r.err)
	}
	if r := runMetaq(t, "segments", "verify", filepath.Join(dir, "missing")); r.code != exitFailure {
		t.Errorf("missing dir: exit %d, %v", r.code, r.err)
	}
	f := filepath.Join(dir, "x.txt")
	os.WriteFile(f, nil, 0o644)
	if r := runMetaq(t, "segments", "dump", f); r.code != exitUsage {
		t.Errorf("dump of a non-segment: exit %d, %v", r.code, r.err)
	}
}

// TestSegmentsVerifyWithConfigCoversPerTopicDataPaths: with --config every
// data directory of the broker is verified, including a topic's own
// dataPath ([topic=...] dataPath=), and dump finds a partition there.
func TestSegmentsVerifyWithConfigCoversPerTopicDataPaths(t *testing.T) {
	main := stoppedBrokerData(t) // events-0
	away := t.TempDir()
	if err := os.Rename(filepath.Join(main, "events-0"), filepath.Join(away, "events-0")); err != nil {
		t.Fatal(err)
	}
	seg := filepath.Join(away, "events-0", "00000000000000000000.meta")
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(main, "home-0") // a clean partition in [system] dataPath
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, "00000000000000000000.meta"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	ini := filepath.Join(t.TempDir(), "server.ini")
	unused := filepath.Join(t.TempDir(), "never-written") // a topic's dataPath before its first put
	if err := os.WriteFile(ini, []byte("[system]\nbrokerId=1\ndataPath="+main+"\n[zookeeper]\nzk.zkEnable=false\n"+
		"[topic=home]\n[topic=events]\ndataPath="+away+"\n[topic=later]\ndataPath="+unused+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	out := mustMetaq(t, "segments", "verify", "--config", ini)
	if !strings.Contains(out, "ok: 2 segments, no corruption") || !strings.Contains(out, "events-0") || !strings.Contains(out, "home-0") {
		t.Fatalf("clean verify --config:\n%s", out)
	}
	var msgs []dumpedMessage
	mustMetaqJSON(t, &msgs, "segments", "dump", "--config", ini, "events-0")
	if len(msgs) != 4 || !strings.HasPrefix(msgs[0].File, away) {
		t.Fatalf("dump --config events-0: %+v", msgs)
	}

	data[58+store.HeaderSize+3] ^= 0x10 // corrupt the partition outside [system] dataPath
	if err := os.WriteFile(seg, data, 0o644); err != nil {
		t.Fatal(err)
	}
	r := runMetaq(t, "segments", "verify", "-c", ini)
	if r.code != exitCheck || !strings.Contains(r.err.Error(), seg) || !strings.Contains(r.err.Error(), "at offset 58") {
		t.Fatalf("verify --config after bit flip: exit %d, %v\n%s", r.code, r.err, r.out)
	}
	if r := runMetaq(t, "segments", "verify", main, "--config", ini); r.code != exitUsage {
		t.Errorf("DIR and --config: exit %d, %v", r.code, r.err)
	}
	if r := runMetaq(t, "segments", "verify"); r.code != exitUsage {
		t.Errorf("neither DIR nor --config: exit %d, %v", r.code, r.err)
	}
}
