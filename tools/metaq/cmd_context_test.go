package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/metaq-go/metaq/internal/clusterview"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

// contextEnv gives the test a private config dir and clears the METAQ_*
// variables that would override a context.
func contextEnv(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("METAQ_CONFIG_DIR", dir)
	for _, k := range []string{"METAQ_ZK", "METAQ_ZK_ROOT", "METAQ_CONTEXT", "METAQ_OUTPUT"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	return dir
}

func TestContextRoundTrip(t *testing.T) {
	dir := contextEnv(t)

	if out := mustMetaq(t, "context", "ls"); !strings.Contains(out, "no contexts") {
		t.Errorf("empty ls: %q", out)
	}
	mustMetaq(t, "context", "save", "prod", "--zk", "zk1:2181,zk2:2181", "--zk-root", "/prod", "--description", "production")
	mustMetaq(t, "context", "save", "dev.local_1", "--zk", "127.0.0.1:2181")
	if _, err := os.Stat(filepath.Join(dir, "contexts", "prod.json")); err != nil {
		t.Fatal(err)
	}

	var rows []contextRow
	mustMetaqJSON(t, &rows, "context", "ls")
	if len(rows) != 2 || rows[0].Name != "dev.local_1" || rows[1].Name != "prod" || rows[1].ZK != "zk1:2181,zk2:2181" ||
		rows[1].ZKRoot != "/prod" || rows[1].Description != "production" || rows[0].Selected || rows[1].Selected {
		t.Fatalf("ls: %+v", rows)
	}

	mustMetaq(t, "context", "select", "prod")
	out := mustMetaq(t, "context", "ls")
	if !strings.Contains(out, "prod *") || strings.Contains(out, "dev.local_1 *") {
		t.Errorf("ls does not mark prod:\n%s", out)
	}
	var r contextRow
	mustMetaqJSON(t, &r, "context", "show")
	if r.Name != "prod" || !r.Selected || r.ZKRoot != "/prod" {
		t.Errorf("show: %+v", r)
	}
	mustMetaqJSON(t, &r, "context", "show", "dev.local_1")
	if r.Name != "dev.local_1" || r.Selected || r.ZK != "127.0.0.1:2181" {
		t.Errorf("show dev.local_1: %+v", r)
	}

	// An update keeps the settings not given.
	mustMetaq(t, "context", "save", "prod", "--description", "prod v2")
	mustMetaqJSON(t, &r, "context", "show", "prod")
	if r.ZK != "zk1:2181,zk2:2181" || r.ZKRoot != "/prod" || r.Description != "prod v2" {
		t.Errorf("after update: %+v", r)
	}

	mustMetaq(t, "context", "rm", "prod")
	if _, err := os.Stat(filepath.Join(dir, selectedFile)); !os.IsNotExist(err) {
		t.Errorf("rm of the selected context left %s: %v", selectedFile, err)
	}
	mustMetaqJSON(t, &rows, "context", "ls")
	if len(rows) != 1 || rows[0].Name != "dev.local_1" {
		t.Errorf("ls after rm: %+v", rows)
	}
	if r := runMetaq(t, "context", "show"); r.code != exitUsage {
		t.Errorf("show with nothing selected: exit %d: %v", r.code, r.err)
	}

	// Bad usage exits 2.
	for _, args := range [][]string{
		{"context", "save", "bad/name", "--zk", "h:1"},
		{"context", "save", "nozk"},
		{"context", "select", "nope"},
		{"context", "show", "nope"},
		{"context", "rm", "nope"},
		{"context"},
	} {
		if r := runMetaq(t, args...); r.code != exitUsage {
			t.Errorf("metaq %s: exit %d, want %d: %v", strings.Join(args, " "), r.code, exitUsage, r.err)
		}
	}
	// No temporary files are left behind.
	left, _ := filepath.Glob(filepath.Join(dir, "contexts", ".*"))
	if len(left) != 0 {
		t.Errorf("left over: %v", left)
	}
}

func TestContextPrecedence(t *testing.T) {
	contextEnv(t)
	zk := zktest.Shared(t).Addr
	root := opsZKRoot(t)
	const bogus = "127.0.0.1:1"

	cluster := func(t *testing.T, args ...string) clusterview.ZKStatus {
		t.Helper()
		var rep clusterview.ClusterReport
		mustMetaqJSON(t, &rep, append([]string{"cluster", "--timeout", "5s"}, args...)...)
		return rep.ZooKeeper
	}

	mustMetaq(t, "context", "save", "good", "--zk", zk, "--zk-root", root)
	mustMetaq(t, "context", "save", "bad", "--zk", bogus, "--zk-root", "/elsewhere")

	// Nothing selected: no ZooKeeper.
	if r := runMetaq(t, "cluster"); r.code != exitUsage {
		t.Fatalf("cluster without zk: exit %d: %v", r.code, r.err)
	}

	// The selected context supplies --zk and --zk-root.
	mustMetaq(t, "context", "select", "good")
	if st := cluster(t); strings.Join(st.Servers, ",") != zk || st.Root != root {
		t.Errorf("from the selected context: %+v", st)
	}
	// zk tree too, through the same globals.
	mustMetaq(t, "zk", "tree", "/", "--depth", "1")

	// Flag and environment win over the context.
	if st := cluster(t, "--zk-root", "/flag"); st.Root != "/flag" || strings.Join(st.Servers, ",") != zk {
		t.Errorf("--zk-root flag: %+v", st)
	}
	t.Setenv("METAQ_ZK_ROOT", "/env")
	if st := cluster(t); st.Root != "/env" {
		t.Errorf("METAQ_ZK_ROOT: %+v", st)
	}
	if st := cluster(t, "--zk-root", "/flag"); st.Root != "/flag" {
		t.Errorf("flag over env: %+v", st)
	}
	os.Unsetenv("METAQ_ZK_ROOT")

	mustMetaq(t, "context", "select", "bad")
	if st := cluster(t, "--zk", zk); strings.Join(st.Servers, ",") != zk || st.Root != "/elsewhere" {
		t.Errorf("--zk flag over the context: %+v", st)
	}
	t.Setenv("METAQ_ZK", zk)
	if st := cluster(t); strings.Join(st.Servers, ",") != zk {
		t.Errorf("METAQ_ZK over the context: %+v", st)
	}
	os.Unsetenv("METAQ_ZK")

	// --context and METAQ_CONTEXT win over the selected context.
	if st := cluster(t, "--context", "good"); strings.Join(st.Servers, ",") != zk || st.Root != root {
		t.Errorf("--context good: %+v", st)
	}
	t.Setenv("METAQ_CONTEXT", "good")
	if st := cluster(t); strings.Join(st.Servers, ",") != zk || st.Root != root {
		t.Errorf("METAQ_CONTEXT=good: %+v", st)
	}
	os.Unsetenv("METAQ_CONTEXT")
}

func TestContextErrors(t *testing.T) {
	dir := contextEnv(t)

	// An unknown --context exits 2 and says what to do.
	r := runMetaq(t, "cluster", "--context", "nope")
	if r.code != exitUsage || !strings.Contains(r.err.Error(), filepath.Join(dir, "contexts", "nope.json")) ||
		!strings.Contains(r.err.Error(), "metaq context save nope") {
		t.Errorf("--context nope: exit %d: %v", r.code, r.err)
	}
	t.Setenv("METAQ_CONTEXT", "nope")
	if r := runMetaq(t, "cluster"); r.code != exitUsage {
		t.Errorf("METAQ_CONTEXT=nope: exit %d: %v", r.code, r.err)
	}
	os.Unsetenv("METAQ_CONTEXT")
	if r := runMetaq(t, "cluster", "--context", "../x"); r.code != exitUsage {
		t.Errorf("--context ../x: exit %d: %v", r.code, r.err)
	}

	// A selected context whose file is gone.
	mustMetaq(t, "context", "save", "gone", "--zk", "h:1")
	mustMetaq(t, "context", "select", "gone")
	if err := os.Remove(filepath.Join(dir, "contexts", "gone.json")); err != nil {
		t.Fatal(err)
	}
	r = runMetaq(t, "cluster")
	if r.code != exitUsage || !strings.Contains(r.err.Error(), selectedFile) || !strings.Contains(r.err.Error(), "metaq context select") {
		t.Errorf("selected but missing: exit %d: %v", r.code, r.err)
	}

	// A corrupt file names the file; the context commands still work to fix it.
	file := filepath.Join(dir, "contexts", "broken.json")
	if err := os.WriteFile(file, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = runMetaq(t, "cluster", "--context", "broken")
	if r.code != exitFailure || !strings.Contains(r.err.Error(), file) {
		t.Errorf("corrupt context: exit %d: %v", r.code, r.err)
	}
	var rows []contextRow
	mustMetaqJSON(t, &rows, "context", "ls")
	if len(rows) != 1 || rows[0].Name != "broken" || rows[0].Error == "" {
		t.Errorf("ls with a corrupt file: %+v", rows)
	}
	mustMetaq(t, "context", "save", "broken", "--zk", "h:2") // replaces the corrupt file
	var c contextRow
	mustMetaqJSON(t, &c, "context", "show", "broken")
	if c.ZK != "h:2" {
		t.Errorf("after replacing the corrupt file: %+v", c)
	}
	// rm clears a selection whose file is gone.
	mustMetaq(t, "context", "rm", "gone")
	if _, err := os.Stat(filepath.Join(dir, selectedFile)); !os.IsNotExist(err) {
		t.Errorf("selection not cleared: %v", err)
	}
}
