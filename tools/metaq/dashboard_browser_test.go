package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/coordinator"
	"github.com/metaq-go/metaq/internal/clusterview"
	"github.com/metaq-go/metaq/producer"
	"github.com/metaq-go/metaq/zkrecipes"
	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

// Topic names cannot hold anything that needs escaping in HTML
// (protocol.ValidTopic: [A-Za-z0-9._-]); group names can hold every byte
// above space except '/' (protocol.ValidGroup, and a ZooKeeper node name),
// and a member's id, instance id and host are free text a client writes
// into ZooKeeper. Those carry the hostile names.
const (
	xssGroup    = `xss<i>"'&amp;<b>`
	xssMember   = `<script>alert(1)</script>`
	xssInstance = `<img src=x onerror=alert(2)>`
)

// screenshotDir is where TestDashboardInBrowser saves a PNG of every page
// when METAQ_DASHBOARD_SCREENSHOTS is set (committed as docs/dashboard/).
func screenshotDir() string {
	if os.Getenv("METAQ_DASHBOARD_SCREENSHOTS") == "" {
		return ""
	}
	return filepath.Join("..", "..", "docs", "dashboard")
}

// TestDashboardInBrowser runs `metaq dashboard` against ZooKeeper, a broker
// in-process and one in a child process, a producer and a lagging consumer
// group, and drives every page with headless Chromium: the numbers match
// `metaq topics` and `metaq groups describe` JSON, hostile user-chosen names
// are shown as text and run nothing, the JSON twins answer, the actions
// work behind their confirmation, and a broker killed with SIGKILL shows as
// down within its ZooKeeper session timeout.
func TestDashboardInBrowser(t *testing.T) {
	browser := newBrowser(t)
	zkAddr := zktest.Shared(t).Addr
	root := opsZKRoot(t)
	zk := []string{"--zk", zkAddr, "--zk-root", root}
	const sessionTimeout = 10 * time.Second
	b1 := opsStartBroker(t, 1, zkAddr, root, 2, "orders", "audit")
	b2 := startChildBroker(t, 2, zkAddr, root, int(sessionTimeout/time.Millisecond), 2, "orders")

	opsPut(t, b1.Addr(), "orders", 0, 5, "first")
	opsPut(t, b1.Addr(), "orders", 1, 3, "second")
	opsPut(t, b2.addr, "orders", 0, 4, "third")
	opsPut(t, b1.Addr(), "audit", 0, 2, "audit")
	mustMetaq(t, append([]string{"consume", "--group", "lagging", "--topic", "orders", "--max", "3"}, zk...)...)
	addHostileGroup(t, zkAddr, root)
	xaKey := prepareXA(t, b1.Addr())

	base := startDashboardCmd(t, append(zk, "--interval", "300ms", "--stall-after", "1s", "--timeout", "3s",
		"--enable-actions", "--admin-token-file", b2.tokenFile, "--broker-admin", "2="+b2.admin)...)

	var dialogs atomic.Int32
	must(t, chromedp.Listen(browser, func(ev any) {
		if _, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			dialogs.Add(1)
		}
	}))
	shots := screenshotDir()
	shoot := func(name string) {
		if shots == "" {
			return
		}
		png, err := chromedp.Run(browser, chromedp.FullScreenshot(100))
		must(t, err)
		must(t, os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644))
	}

	t.Run("overview", func(t *testing.T) {
		eventuallyPage(t, browser, base+"/", `document.querySelectorAll('#brokers tr[data-broker] td.st.ok').length === 2 && document.getElementById('zk-state').textContent.trim() === 'connected'`)
		// The page refreshes itself in place (app.js).
		waitJS(t, browser, `document.body.dataset.refreshed !== undefined`)
		shoot("overview")
	})

	t.Run("topics match metaq topics list", func(t *testing.T) {
		var rows []topicListRow
		mustMetaqJSON(t, &rows, append([]string{"topics", "list"}, zk...)...)
		var want []string
		for _, r := range rows {
			want = append(want, fmt.Sprintf("%s %d/%d", r.Topic, r.PubPartitions, r.SubPartitions))
		}
		eventuallyEqual(t, browser, base+"/topics", strings.Join(want, "\n"),
			`Array.from(document.querySelectorAll('#topics tr[data-topic]')).map(r => r.dataset.topic + ' ' + r.querySelector('.pub').textContent + '/' + r.querySelector('.sub').textContent).join('\n')`)
		// Retention comes from the configuration file of the child broker (the
		// default deletePolicy; the in-process broker has no file).
		eventuallyPage(t, browser, base+"/topics", `document.querySelector('#topics tr[data-topic="orders"] .retention').textContent === 'delete,168'`)
		shoot("topics")
	})

	t.Run("topic partitions match metaq topics describe", func(t *testing.T) {
		var d clusterview.TopicDescription
		mustMetaqJSON(t, &d, append([]string{"topics", "describe", "orders"}, zk...)...)
		var want []string
		for _, p := range d.Partitions {
			want = append(want, fmt.Sprintf("%s %d %d", p.Partition, *p.MinOffset, *p.MaxOffset))
		}
		eventuallyEqual(t, browser, base+"/topics/orders", strings.Join(want, "\n"),
			`Array.from(document.querySelectorAll('#partitions tr[data-partition]')).map(r => r.dataset.partition + ' ' + r.querySelector('.min').textContent + ' ' + r.querySelector('.max').textContent).join('\n')`)
		shoot("topic")
	})

	t.Run("groups match metaq groups describe", func(t *testing.T) {
		var rows []clusterview.GroupPartition
		mustMetaqJSON(t, &rows, append([]string{"groups", "describe", "lagging"}, zk...)...)
		var want []string
		var total int64
		for _, r := range rows {
			want = append(want, fmt.Sprintf("%s %s %s %s %s", r.Topic, r.Partition, clusterview.FormatOffset(r.Committed), clusterview.FormatOffset(r.LogEnd), clusterview.FormatOffset(r.Lag)))
			total += max(r.Lag, 0)
		}
		if total == 0 {
			t.Fatalf("group lagging has no lag: %+v", rows)
		}
		eventuallyEqual(t, browser, base+"/groups/lagging", strings.Join(want, "\n"),
			`Array.from(document.querySelectorAll('table.lag tr[data-partition]')).map(r => r.dataset.topic + ' ' + r.dataset.partition + ' ' + ['.committed', '.log-end', '.lag'].map(c => r.querySelector(c).textContent).join(' ')).join('\n')`)
		// Nothing consumes: after --stall-after the lagging partitions are highlighted.
		eventuallyPage(t, browser, base+"/groups/lagging", `document.querySelectorAll('table.lag tr.stalled').length > 0`)
		shoot("group")
		eventuallyEqual(t, browser, base+"/groups", groupDigitsForTest(total),
			`document.querySelector('#groups tr[data-group="lagging"] .total-lag').textContent`)
		shoot("groups")
		var twin []clusterview.GroupPartition
		getJSON(t, base+"/groups/lagging", &struct {
			Partitions *[]clusterview.GroupPartition `json:"partitions"`
		}{&twin})
		if len(twin) != len(rows) {
			t.Errorf("JSON twin of /groups/lagging has %d partitions, metaq groups describe %d", len(twin), len(rows))
		}
	})

	t.Run("hostile names are shown escaped and run nothing", func(t *testing.T) {
		for _, u := range []string{base + "/groups", base + "/groups/" + url.PathEscape(xssGroup)} {
			eventuallyPage(t, browser, u, `document.querySelector('section.group[data-group] .member-id') !== null`)
			got, err := chromedp.Run(browser, chromedp.Evaluate[struct{ Group, Member, Instance string }](`(() => { const s = Array.from(document.querySelectorAll('section.group')).find(s => s.dataset.group.startsWith('xss'));
				return {Group: s.dataset.group, Member: s.querySelector('.member-id').textContent, Instance: s.querySelector('.member-instance').textContent}; })()`))
			must(t, err)
			if got.Group != xssGroup || got.Member != xssMember || got.Instance != xssInstance {
				t.Errorf("%s shows group %q member %q instance %q; want the names as text", u, got.Group, got.Member, got.Instance)
			}
			injected, err := chromedp.Run(browser, chromedp.Evaluate[int](`document.querySelectorAll('script:not([src]), img, i, b:not([class])').length`))
			must(t, err)
			if injected != 0 {
				t.Errorf("%s: %d elements were created from user-chosen names", u, injected)
			}
		}
		title, err := chromedp.Run(browser, chromedp.TextContent(chromedp.ID("group-name")))
		must(t, err)
		if title != xssGroup {
			t.Errorf("group page title %q, want %q", title, xssGroup)
		}
		if n := dialogs.Load(); n != 0 {
			t.Fatalf("%d JavaScript dialogs opened: a hostile name ran as script", n)
		}
	})

	t.Run("transactions and health", func(t *testing.T) {
		var txs []clusterview.TxRow
		mustMetaqJSON(t, &txs, append([]string{"tx", "list"}, zk...)...)
		if len(txs) != 1 || txs[0].Key != xaKey {
			t.Fatalf("metaq tx list: %+v, want the prepared %s", txs, xaKey)
		}
		eventuallyEqual(t, browser, base+"/transactions", fmt.Sprintf("%d %s", *txs[0].BrokerID, xaKey),
			`Array.from(document.querySelectorAll('#transactions tbody tr')).map(r => r.cells[0].textContent + ' ' + r.cells[2].textContent).join('\n')`)
		shoot("transactions")
		eventuallyPage(t, browser, base+"/health", `document.getElementById('healthy').textContent === 'healthy' && document.querySelectorAll('#health tbody tr').length === 2`)
		shoot("health")
		var rep clusterview.HealthReport
		if code := getJSON(t, base+"/health", &rep); code != http.StatusOK || !rep.Healthy || len(rep.Brokers) != 2 {
			t.Errorf("GET /health (JSON): %d %+v", code, rep)
		}
	})

	t.Run("actions", func(t *testing.T) {
		// Reset the lagging group to the earliest offsets: preview, then confirm.
		var before, rows []clusterview.GroupPartition
		mustMetaqJSON(t, &before, append([]string{"groups", "describe", "lagging"}, zk...)...)
		must(t, chromedp.Do(browser, chromedp.Navigate(base+"/groups/lagging"),
			chromedp.SetValue(chromedp.CSS(`section.group select[name=mode]`), "earliest"),
			chromedp.Click(chromedp.CSS(`section.group form.action button`))))
		waitFor(t, browser, "confirm")
		mustMetaqJSON(t, &rows, append([]string{"groups", "describe", "lagging"}, zk...)...)
		if fmt.Sprint(rows) != fmt.Sprint(before) {
			t.Fatalf("the preview changed offsets:\n%v\n%v", before, rows)
		}
		if result := confirmAction(t, browser); result != "done" {
			t.Fatalf("reset offsets: %s", result)
		}
		mustMetaqJSON(t, &rows, append([]string{"groups", "describe", "lagging"}, zk...)...)
		for _, r := range rows {
			if r.Committed != 0 {
				t.Errorf("after the reset %s %s is committed at %d, want 0", r.Topic, r.Partition, r.Committed)
			}
		}
		// Close partition 2-0 on the child broker's admin endpoint.
		must(t, chromedp.Do(browser, chromedp.Navigate(base+"/topics/orders"),
			chromedp.Click(chromedp.CSS(`#partitions tr[data-partition="2-0"] button`))))
		waitFor(t, browser, "confirm")
		shoot("confirm")
		if result := confirmAction(t, browser); result != "done" {
			t.Fatalf("close partition: %s", result)
		}
		c := brokertest.Dial(t, b2.addr)
		c.Send(t, "put orders 0 1 0 1\r\nx")
		if line, _ := c.ReadReply(t); !strings.HasPrefix(line, "result 403") {
			t.Errorf("put to the closed partition 2-0: %q, want 403", line)
		}
		// A POST without the form token is refused.
		resp, err := http.PostForm(base+"/actions/promote", url.Values{"broker": {"1"}, "member": {"1"}, "confirm": {"yes"}})
		must(t, err)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("POST without a CSRF token: %s, want 403", resp.Status)
		}
	})

	t.Run("a killed broker shows as down within the session timeout", func(t *testing.T) {
		killed := time.Now()
		b2.kill()
		deadline := killed.Add(sessionTimeout)
		for {
			must(t, chromedp.Do(browser, chromedp.Navigate(base+"/")))
			down, err := chromedp.Run(browser, chromedp.Evaluate[bool](
				`(() => { const c = document.querySelector('#brokers tr[data-broker="2"] td.st'); return c !== null && c.textContent.startsWith('down'); })()`))
			must(t, err)
			if down {
				t.Logf("broker 2 shown as down %v after SIGKILL", time.Since(killed).Round(time.Millisecond))
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("broker 2 not shown as down within the session timeout %v", sessionTimeout)
			}
			time.Sleep(100 * time.Millisecond)
		}
		var rep clusterview.HealthReport
		if code := getJSON(t, base+"/health", &rep); code != http.StatusServiceUnavailable || rep.Healthy {
			t.Errorf("GET /health after the kill: %d %+v, want 503 unhealthy", code, rep)
		}
	})

	if shots != "" {
		// For the screenshots only: some traffic, so rates and trends move
		// (paced by a ticker; nothing waits on it).
		tick := time.NewTicker(150 * time.Millisecond)
		for i := range 30 {
			<-tick.C
			opsPut(t, b1.Addr(), "orders", i%2, 3+i%4, "load")
			opsPut(t, b1.Addr(), "audit", 0, 1, "load")
		}
		tick.Stop()
		for _, p := range []struct{ url, name string }{{"/", "overview"}, {"/topics", "topics"}, {"/groups", "groups"}, {"/groups/lagging", "group"}} {
			must(t, chromedp.Do(browser, chromedp.Navigate(base+p.url)))
			shoot(p.name)
		}
	}
}

// confirmAction clicks the confirm button and returns the result page's verdict
// (with the message when it failed).
func confirmAction(t *testing.T, browser context.Context) string {
	t.Helper()
	must(t, chromedp.Do(browser, chromedp.Click(chromedp.ID("confirm"))))
	waitFor(t, browser, "result")
	res, err := chromedp.Run(browser, chromedp.Evaluate[string](`document.getElementById('result').textContent + (document.getElementById('result').textContent === 'done' ? '' : ': ' + document.querySelector('main').textContent)`))
	must(t, err)
	return res
}

// waitFor waits until the page has an element with id, or fails with the page's text.
func waitFor(t *testing.T, browser context.Context, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(browser, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.ID(id))); err != nil {
		text, _ := chromedp.Run(browser, chromedp.Evaluate[string](`document.body.innerText`))
		t.Fatalf("no #%s on the page (%v):\n%s", id, err, text)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func groupDigitsForTest(n int64) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// eventuallyPage loads u until the JavaScript condition holds (the
// dashboard's snapshot may be one interval behind).
func eventuallyPage(t *testing.T, browser context.Context, u, cond string) {
	t.Helper()
	opsEventually(t, u+": "+cond, func() bool {
		must(t, chromedp.Do(browser, chromedp.Navigate(u)))
		ok, err := chromedp.Run(browser, chromedp.Evaluate[bool](cond))
		must(t, err)
		return ok
	})
}

// eventuallyEqual loads u until the JavaScript expression yields want.
func eventuallyEqual(t *testing.T, browser context.Context, u, want, expr string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		must(t, chromedp.Do(browser, chromedp.Navigate(u)))
		got, err := chromedp.Run(browser, chromedp.Evaluate[string](expr))
		must(t, err)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s shows\n%s\nwant (from the CLI)\n%s", u, got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitJS(t *testing.T, browser context.Context, cond string) {
	t.Helper()
	opsEventually(t, cond, func() bool {
		ok, err := chromedp.Run(browser, chromedp.Evaluate[bool](cond))
		must(t, err)
		return ok
	})
}

// getJSON fetches the JSON twin of a page.
func getJSON(t *testing.T, u string, v any) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	must(t, err)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("GET %s: Content-Type %q, want application/json", u, ct)
	}
	must(t, json.NewDecoder(resp.Body).Decode(v))
	return resp.StatusCode
}

// prepareXA leaves one prepared XA transaction on the broker at addr, as a
// transaction manager that died after prepare would, and returns its key.
func prepareXA(t *testing.T, addr string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := producer.New(ctx, producer.WithBroker(addr, 1))
	must(t, err)
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	xa, err := p.XAResource(ctx, producer.XAOptions{Broker: addr, Name: "dash"})
	must(t, err)
	x := producer.XID{FormatID: 1, GlobalID: []byte("in-doubt")}
	must(t, xa.Start(ctx, x))
	_, err = xa.Send(ctx, x, producer.Message{Topic: "audit", Payload: []byte("prepared")})
	must(t, err)
	_, err = xa.Prepare(ctx, x)
	must(t, err)
	return xa.Key(x)
}

func writeToken(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "admin.token")
	must(t, os.WriteFile(p, []byte("test-admin-token\n"), 0o600))
	return p
}

// addHostileGroup registers group xssGroup with a live member whose id and
// instance id are markup, and a committed offset, as a client could.
func addHostileGroup(t *testing.T, zkAddr, root string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := zkrecipes.Connect(ctx, []string{zkAddr})
	must(t, err)
	t.Cleanup(s.Close)
	p := coordinator.NewPaths(root)
	data, _ := json.Marshal(map[string]any{"id": xssMember, "instanceId": xssInstance, "host": "host<b>", "topics": []string{"orders"}})
	_, err = s.CreateParents(ctx, p.GroupMembers(xssGroup)+"/member-", data, zkrecipes.EphemeralSequential)
	must(t, err)
	_, err = s.CreateParents(ctx, p.GroupOffset(xssGroup, "orders", 1, 0), []byte("-1-0"), zkrecipes.Persistent)
	must(t, err)
}

// startDashboardCmd runs `metaq dashboard --listen 127.0.0.1:0 args...`
// in-process until the test ends and returns its base URL.
func startDashboardCmd(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	cmd := newRootCmd()
	cmd.SetOut(pw)
	cmd.SetErr(io.Discard)
	cmd.SetArgs(append([]string{"dashboard", "--listen", "127.0.0.1:0"}, args...))
	done := make(chan error, 1)
	go func() {
		err := cmd.ExecuteContext(ctx)
		pw.CloseWithError(fmt.Errorf("metaq dashboard ended: %v", err))
		done <- err
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("metaq dashboard: %v", err)
		}
	})
	line, err := bufio.NewReader(pr).ReadString('\n')
	go func() { _, _ = io.Copy(io.Discard, pr) }() // owned by the pipe: ends when the command does
	if err != nil {
		t.Fatalf("metaq dashboard did not start: %v", err)
	}
	f := strings.Fields(line)
	if len(f) < 2 || !strings.HasPrefix(f[1], "http://") {
		t.Fatalf("metaq dashboard printed %q, want its URL", line)
	}
	return strings.TrimSuffix(f[1], "/")
}
