package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/internal/clusterview"
	"github.com/metaq-go/metaq/zkrecipes"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

// grpFixture is a broker with topic "orders" (2 partitions on broker 1) in a
// private ZooKeeper root, and a session for checking ZooKeeper directly.
type grpFixture struct {
	zkAddr, root string
	brokerAddr   string
	s            *zkrecipes.Session
	p            coordinator.Paths
}

func grpSetup(t *testing.T) *grpFixture {
	t.Helper()
	zkAddr := zktest.Shared(t).Addr
	root := opsZKRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := zkrecipes.Connect(ctx, []string{zkAddr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	grpDeleteTree(ctx, t, s, root) // left by an earlier run (-count)
	b := opsStartBroker(t, 1, zkAddr, root, 2, "orders")
	return &grpFixture{zkAddr: zkAddr, root: root, brokerAddr: b.Addr(), s: s, p: coordinator.NewPaths(root)}
}

// grpDeleteTree deletes p and everything under it.
func grpDeleteTree(ctx context.Context, t *testing.T, s *zkrecipes.Session, p string) {
	t.Helper()
	kids, _, err := s.Children(ctx, p)
	if errors.Is(err, zkrecipes.ErrNoNode) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range kids {
		grpDeleteTree(ctx, t, s, p+"/"+k)
	}
	if err := s.Delete(ctx, p, -1); err != nil && !errors.Is(err, zkrecipes.ErrNoNode) {
		t.Fatal(err)
	}
}

func (f *grpFixture) args(a ...string) []string {
	return append(a, "--zk", f.zkAddr, "--zk-root", f.root)
}

func grpCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// grpJoin joins group as a member of topic "orders" and waits until it owns
// want partitions.
func (f *grpFixture) grpJoin(t *testing.T, group string, want int) *coordinator.Group {
	t.Helper()
	m, err := coordinator.JoinGroup(grpCtx(t), f.s, f.p, coordinator.GroupOptions{Group: group, Topics: []string{"orders"},
		Debounce: 50 * time.Millisecond, FormingDebounce: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	opsEventually(t, "the member to own its partitions", func() bool { return len(m.Owned()) == want })
	return m
}

func orderTP(p int) coordinator.TopicPartition {
	return coordinator.TopicPartition{Topic: "orders", Partition: coordinator.Partition{BrokerID: 1, Partition: p}}
}

// grpOffset reads a committed offset straight from ZooKeeper.
func (f *grpFixture) grpOffset(t *testing.T, group string, p int) (coordinator.Offset, bool) {
	t.Helper()
	o, ok, err := coordinator.FetchOffset(grpCtx(t), f.s, f.p, group, orderTP(p))
	if err != nil {
		t.Fatal(err)
	}
	return o, ok
}

// grpCommitted sets up group g1 with offsets 46 (1-0) and 23 (1-1) committed
// by a member that then leaves; the log ends are 115 and 69 (messages of 23 bytes).
func (f *grpFixture) grpCommitted(t *testing.T) {
	t.Helper()
	opsPut(t, f.brokerAddr, "orders", 0, 5, "m") // 5 × (20 + 3) = 115 bytes
	opsPut(t, f.brokerAddr, "orders", 1, 3, "m") // 69 bytes
	m := f.grpJoin(t, "g1", 2)
	ctx := grpCtx(t)
	if err := m.CommitOffset(ctx, "orders", 1, 0, 7, 46); err != nil {
		t.Fatal(err)
	}
	if err := m.CommitOffset(ctx, "orders", 1, 1, 8, 23); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestGroupsDescribeShowsLagAndOwners(t *testing.T) {
	f := grpSetup(t)
	opsPut(t, f.brokerAddr, "orders", 0, 5, "m")
	opsPut(t, f.brokerAddr, "orders", 1, 3, "m")
	m := f.grpJoin(t, "g1", 2)
	ctx := grpCtx(t)
	if err := m.CommitOffset(ctx, "orders", 1, 0, 7, 46); err != nil {
		t.Fatal(err)
	}
	if err := m.CommitOffset(ctx, "orders", 1, 1, 8, 69); err != nil {
		t.Fatal(err)
	}

	var rows []clusterview.GroupPartition
	mustMetaqJSON(t, &rows, f.args("groups", "describe", "g1")...)
	want := []clusterview.GroupPartition{
		{Topic: "orders", Partition: "1-0", Committed: 46, CommittedMsgID: 7, LogEnd: 115, Lag: 69, Owner: m.MemberID(), AssignedTo: m.MemberID()},
		{Topic: "orders", Partition: "1-1", Committed: 69, CommittedMsgID: 8, LogEnd: 69, Lag: 0, Owner: m.MemberID(), AssignedTo: m.MemberID()},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Fatalf("describe -o json:\n got %+v\nwant %+v", rows, want)
	}
	// The required fields by their JSON names.
	var raw []map[string]any
	mustMetaqJSON(t, &raw, f.args("groups", "describe", "g1")...)
	for _, k := range []string{"topic", "partition", "committed", "log_end", "lag", "owner"} {
		if _, ok := raw[0][k]; !ok {
			t.Errorf("describe JSON lacks %q: %v", k, raw[0])
		}
	}

	var members []clusterview.GroupMember
	mustMetaqJSON(t, &members, f.args("groups", "describe", "g1", "--members")...)
	if len(members) != 1 || members[0].ID != m.MemberID() || !members[0].Leader || members[0].Partitions != 2 ||
		members[0].Style != clusterview.StyleOurs || !reflect.DeepEqual(members[0].Topics, []string{"orders"}) {
		t.Fatalf("members: %+v", members)
	}

	out := mustMetaq(t, f.args("groups", "describe", "g1")...)
	for _, w := range []string{"Group:      g1 (metaq-go)", m.MemberID() + " *", "COMMITTED", "Total lag: 69 bytes"} {
		if !strings.Contains(out, w) {
			t.Errorf("describe table lacks %q:\n%s", w, out)
		}
	}

	var list []clusterview.GroupListRow
	mustMetaqJSON(t, &list, f.args("groups", "list")...)
	if len(list) != 1 || list[0].Group != "g1" || list[0].Style != clusterview.StyleOurs || list[0].Members != 1 ||
		!reflect.DeepEqual(list[0].Topics, []string{"orders"}) {
		t.Fatalf("list: %+v", list)
	}

	// After the member leaves: no owner, same offsets.
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	mustMetaqJSON(t, &rows, f.args("groups", "describe", "g1")...)
	if len(rows) != 2 || rows[0].Owner != "" || rows[0].Lag != 69 || rows[1].Lag != 0 {
		t.Fatalf("after leave: %+v", rows)
	}

	if r := runMetaq(t, f.args("groups", "describe", "nope")...); r.code != exitFailure || !strings.Contains(r.err.Error(), "does not exist") {
		t.Fatalf("describe of a missing group: exit %d, %v", r.code, r.err)
	}
}

func TestGroupsListTellsMetaQJavaGroups(t *testing.T) {
	f := grpSetup(t)
	ctx := grpCtx(t)
	// A MetaQ Java consumer registers an ephemeral ids/<group>_<consumerId> with its topics.
	if _, err := f.s.CreateParents(ctx, f.p.GroupMetaQIDs("java")+"/java_host-1", []byte("orders,audit"), zkrecipes.Ephemeral); err != nil {
		t.Fatal(err)
	}
	var list []clusterview.GroupListRow
	mustMetaqJSON(t, &list, f.args("groups", "list")...)
	if len(list) != 1 || list[0].Style != clusterview.StyleJava || list[0].Members != 1 || !reflect.DeepEqual(list[0].Topics, []string{"audit", "orders"}) {
		t.Fatalf("list: %+v", list)
	}
	r := runMetaq(t, f.args("groups", "reset-offsets", "java", "--topic", "orders", "--to-earliest", "--execute")...)
	if r.code != exitFailure || !strings.Contains(r.err.Error(), "live member") {
		t.Fatalf("reset of a live Java group: exit %d: %v", r.code, r.err)
	}
}

func TestGroupsResetOffsetsDryRunThenExecute(t *testing.T) {
	f := grpSetup(t)
	f.grpCommitted(t)
	before0, _ := f.grpOffset(t, "g1", 0)
	before1, _ := f.grpOffset(t, "g1", 1)

	var dry clusterview.OffsetPlan
	mustMetaqJSON(t, &dry, f.args("groups", "reset-offsets", "g1", "--topic", "orders", "--to-earliest")...)
	if dry.Executed || len(dry.Partitions) != 2 || dry.Partitions[0].Current != 46 || dry.Partitions[0].New != 0 ||
		dry.Partitions[1].Current != 23 || dry.Partitions[1].New != 0 {
		t.Fatalf("dry run plan: %+v", dry)
	}
	if o, _ := f.grpOffset(t, "g1", 0); o != before0 {
		t.Fatalf("dry run wrote 1-0: %v, was %v", o, before0)
	}
	if o, _ := f.grpOffset(t, "g1", 1); o != before1 {
		t.Fatalf("dry run wrote 1-1: %v, was %v", o, before1)
	}
	out := mustMetaq(t, f.args("groups", "reset-offsets", "g1", "--topic", "orders", "--to-earliest")...)
	if !strings.Contains(out, "46 -> 0 (-46)") || !strings.Contains(out, "Dry run: nothing written") {
		t.Fatalf("dry run table:\n%s", out)
	}

	var done clusterview.OffsetPlan
	mustMetaqJSON(t, &done, f.args("groups", "reset-offsets", "g1", "--topic", "orders", "--to-earliest", "--execute")...)
	if !done.Executed || !reflect.DeepEqual(done.Partitions, dry.Partitions) {
		t.Fatalf("executed plan differs from the dry run:\n got %+v\nwant %+v", done.Partitions, dry.Partitions)
	}
	for i, c := range dry.Partitions {
		if o, ok := f.grpOffset(t, "g1", i); !ok || o != (coordinator.Offset{MsgID: -1, Offset: c.New}) {
			t.Fatalf("partition %s after --execute: %v (found %v), want -1-%d", c.Partition, o, ok, c.New)
		}
	}
	raw, _, err := f.s.Get(grpCtx(t), f.p.GroupOffset("g1", "orders", 1, 0))
	if err != nil || string(raw) != "-1-0" {
		t.Fatalf("stored node %q (%v), want MetaQ-style -1-0", raw, err)
	}

	// --to-offset snaps to a message start; --partition narrows; --shift-by moves.
	mustMetaqJSON(t, &done, f.args("groups", "reset-offsets", "g1", "--topic", "orders", "--partition", "1-0", "--to-offset", "50", "--execute")...)
	if len(done.Partitions) != 1 || done.Partitions[0].New != 46 || done.Partitions[0].Note == "" {
		t.Fatalf("--to-offset 50: %+v", done.Partitions)
	}
	mustMetaqJSON(t, &done, f.args("groups", "reset-offsets", "g1", "--topic", "orders", "--shift-by", "23", "--execute")...)
	if done.Partitions[0].New != 69 || done.Partitions[1].New != 23 {
		t.Fatalf("--shift-by 23: %+v", done.Partitions)
	}
	mustMetaqJSON(t, &done, f.args("groups", "reset-offsets", "g1", "--topic", "orders", "--to-latest", "--execute")...)
	if done.Partitions[0].New != 115 || done.Partitions[1].New != 69 {
		t.Fatalf("--to-latest: %+v", done.Partitions)
	}

	for _, bad := range [][]string{
		{"groups", "reset-offsets", "g1", "--topic", "orders"},
		{"groups", "reset-offsets", "g1", "--topic", "orders", "--to-earliest", "--to-latest"},
		{"groups", "reset-offsets", "g1", "--to-earliest"},
		{"groups", "reset-offsets", "g1", "--topic", "orders", "--to-time", "yesterday"},
		{"groups", "reset-offsets", "g1", "--topic", "orders", "--to-earliest", "--partition", "x"},
	} {
		if r := runMetaq(t, f.args(bad...)...); r.code != exitUsage {
			t.Errorf("%v: exit %d (%v), want %d", bad, r.code, r.err, exitUsage)
		}
	}
}

func TestGroupsResetOffsetsToTime(t *testing.T) {
	f := grpSetup(t)
	opsPut(t, f.brokerAddr, "orders", 0, 4, "a") // 4 × 23 bytes, all before T
	// T: the next millisecond boundary after the last acknowledged put, so
	// every id so far is older and every later one is not.
	t0 := time.Now().UnixMilli()
	for time.Now().UnixMilli() <= t0 {
		time.Sleep(100 * time.Microsecond)
	}
	at := time.UnixMilli(t0 + 1).UTC()
	opsPut(t, f.brokerAddr, "orders", 0, 3, "b")
	var plan clusterview.OffsetPlan
	mustMetaqJSON(t, &plan, f.args("groups", "reset-offsets", "g2", "--topic", "orders", "--to-time", at.Format(time.RFC3339Nano))...)
	if len(plan.Partitions) != 2 || plan.Partitions[0].New != 92 || plan.Partitions[1].New != 0 {
		t.Fatalf("--to-time %s: %+v, want 1-0 at 92 (the first b message) and the empty 1-1 at 0", at.Format(time.RFC3339Nano), plan.Partitions)
	}
	mustMetaqJSON(t, &plan, f.args("groups", "reset-offsets", "g2", "--topic", "orders", "--to-time", "2000-01-01T00:00:00Z")...)
	if plan.Partitions[0].New != 0 {
		t.Fatalf("--to-time in the past: %+v", plan.Partitions)
	}
	mustMetaqJSON(t, &plan, f.args("groups", "reset-offsets", "g2", "--topic", "orders", "--to-time", time.Now().Add(time.Hour).Format(time.RFC3339))...)
	if plan.Partitions[0].New != 161 {
		t.Fatalf("--to-time in the future: %+v, want the end 161", plan.Partitions)
	}
}

func TestGroupsResetOffsetsRefusedWhileMembersLive(t *testing.T) {
	f := grpSetup(t)
	f.grpCommitted(t)
	m := f.grpJoin(t, "g1", 2)
	r := runMetaq(t, f.args("groups", "reset-offsets", "g1", "--topic", "orders", "--to-earliest", "--execute")...)
	if r.code != exitFailure || !strings.Contains(r.err.Error(), "live member") || !strings.Contains(r.err.Error(), m.MemberID()) {
		t.Fatalf("reset with a live member: exit %d: %v", r.code, r.err)
	}
	if o, _ := f.grpOffset(t, "g1", 0); o.Offset != 46 {
		t.Fatalf("offset changed by a refused reset: %v", o)
	}
	ex := filepath.Join(t.TempDir(), "g1.json")
	mustMetaq(t, f.args("groups", "export", "g1", "-f", ex)...)
	if r := runMetaq(t, f.args("groups", "import", "g1", "-f", ex, "--execute")...); r.code != exitFailure || !strings.Contains(r.err.Error(), "live member") {
		t.Fatalf("import with a live member: exit %d: %v", r.code, r.err)
	}
}

func TestGroupsExportImportRoundTrip(t *testing.T) {
	f := grpSetup(t)
	f.grpCommitted(t)
	file := filepath.Join(t.TempDir(), "g1.json")
	mustMetaq(t, f.args("groups", "export", "g1", "-f", file)...)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var ex groupExport
	if err := json.Unmarshal(data, &ex); err != nil {
		t.Fatal(err)
	}
	wantOffsets := []exportedOffset{{"orders", "1-0", 46, 7}, {"orders", "1-1", 23, 8}}
	if ex.Group != "g1" || !reflect.DeepEqual(ex.Offsets, wantOffsets) {
		t.Fatalf("export: %+v", ex)
	}
	if out := mustMetaq(t, f.args("groups", "export", "g1")...); !strings.Contains(out, `"msg_id": 7`) {
		t.Fatalf("export to stdout:\n%s", out)
	}

	mustMetaq(t, f.args("groups", "reset-offsets", "g1", "--topic", "orders", "--to-latest", "--execute")...)
	var plan clusterview.OffsetPlan
	mustMetaqJSON(t, &plan, f.args("groups", "import", "g1", "-f", file)...)
	if plan.Executed || plan.Partitions[0].Current != 115 || plan.Partitions[0].New != 46 {
		t.Fatalf("import dry run: %+v", plan)
	}
	if o, _ := f.grpOffset(t, "g1", 0); o.Offset != 115 {
		t.Fatalf("import dry run wrote: %v", o)
	}
	mustMetaq(t, f.args("groups", "import", "g1", "-f", file, "--execute")...)
	for i, w := range []coordinator.Offset{{MsgID: 7, Offset: 46}, {MsgID: 8, Offset: 23}} {
		if o, _ := f.grpOffset(t, "g1", i); o != w {
			t.Fatalf("partition %d after import: %v, want %v", i, o, w)
		}
	}
	// Into another (new) group, from stdin.
	cmd := newRootCmd()
	var out strings.Builder
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetIn(strings.NewReader(string(data)))
	cmd.SetArgs(f.args("groups", "import", "copy", "-f", "-", "--execute"))
	if err := cmd.ExecuteContext(grpCtx(t)); err != nil {
		t.Fatalf("import from stdin: %v\n%s", err, out.String())
	}
	if o, ok := f.grpOffset(t, "copy", 1); !ok || o != (coordinator.Offset{MsgID: 8, Offset: 23}) {
		t.Fatalf("copy group: %v %v", o, ok)
	}
	if r := runMetaq(t, f.args("groups", "import", "g1", "-f", filepath.Join(t.TempDir(), "missing.json"))...); r.code == exitOK {
		t.Fatal("import of a missing file succeeded")
	}
}
