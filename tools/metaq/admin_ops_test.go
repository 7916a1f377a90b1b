package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/protocol"
)

// The admin port exposes the fsync histogram and the operator's partition
// switch: a closed partition answers puts with 403 until it is opened again.
func TestAdminFsyncHistogramAndPartitionSwitch(t *testing.T) {
	fsync := newFsyncMetrics()
	b := brokertest.Start(t, brokertest.Options{Partitions: 2, Modify: func(o *broker.Options) {
		o.Store.OnSync = fsync.observe
	}})
	tokenFile, token := writeAdminToken(t)
	a, err := startAdminWith("127.0.0.1:0", b, adminSecurity{TokenFile: tokenFile}, slog.New(slog.DiscardHandler), fsync.collectors()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(context.Background()) })
	c := brokertest.Dial(t, b.Addr())
	put := func(opaque int) string {
		c.Send(t, fmt.Sprintf("put sw 0 2 0 %d %d\r\nhi", protocol.Checksum([]byte("hi")), opaque))
		line, _ := c.ReadReply(t)
		return line
	}
	if line := put(1); !strings.HasPrefix(line, "result 200") {
		t.Fatalf("put: %s", line)
	}
	post := func(path string) int {
		req, _ := http.NewRequest(http.MethodPost, "http://"+a.Addr()+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("/partitions/sw/0/close"); code != http.StatusOK {
		t.Fatalf("close: HTTP %d", code)
	}
	if line := put(2); !strings.HasPrefix(line, "result 403") {
		t.Fatalf("put to a closed partition: %s", line)
	}
	if code := post("/partitions/sw/0/open"); code != http.StatusOK {
		t.Fatalf("open: HTTP %d", code)
	}
	if line := put(3); !strings.HasPrefix(line, "result 200") {
		t.Fatalf("put after reopening: %s", line)
	}
	if code := post("/partitions/sw/x/close"); code != http.StatusBadRequest {
		t.Fatalf("bad partition: HTTP %d, want 400", code)
	}
	h := scrape(t, a.Addr())["metaq_fsync_seconds"]
	if h == nil || h.GetMetric()[0].GetHistogram().GetSampleCount() < 2 {
		t.Fatalf("metaq_fsync_seconds did not count the fsyncs of two acknowledged puts: %v", h)
	}
}
