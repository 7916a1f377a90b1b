package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/metaq-go/metaq/producer"
)

// serverCPU reads a broker's process CPU seconds from its admin endpoint
// (`metaq broker --admin` or adminPort: Prometheus /metrics,
// process_cpu_seconds_total), so a benchmark can report the broker's CPU per
// message next to its own.
type serverCPU struct {
	url    string
	client *http.Client
	before serverReading
}

// serverReading is one scrape of the broker's metrics.
type serverReading struct {
	cpu     float64 // process_cpu_seconds_total
	puts    float64 // metaq_puts_total (0 if absent)
	batches float64 // metaq_put_batches_total (0 if absent: an older broker)
}

// startServerCPU takes the first reading ("" addr = no reading; the result
// is nil and every method is a no-op).
func startServerCPU(ctx context.Context, addr string) (*serverCPU, error) {
	if addr == "" {
		return nil, nil
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	s := &serverCPU{url: strings.TrimSuffix(addr, "/") + "/metrics", client: &http.Client{Timeout: 10 * time.Second}}
	v, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	s.before = v
	return s, nil
}

// finish takes the second reading and fills the server CPU fields of r.
func (s *serverCPU) finish(ctx context.Context, r *benchResult) error {
	if s == nil {
		return nil
	}
	v, err := s.read(ctx)
	if err != nil {
		return err
	}
	r.ServerCPUS = v.cpu - s.before.cpu
	if r.Messages > 0 {
		r.ServerCPUUsPerMsg = r.ServerCPUS * 1e6 / float64(r.Messages)
	}
	if b := v.batches - s.before.batches; b > 0 {
		r.ServerPutsPerBatch = (v.puts - s.before.puts) / b
	}
	return nil
}

func (s *serverCPU) read(ctx context.Context) (serverReading, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return serverReading{}, fmt.Errorf("--admin: %w", err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return serverReading{}, fmt.Errorf("--admin: read the broker's metrics: %w (is it the broker's admin address, adminPort or --admin?)", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return serverReading{}, fmt.Errorf("--admin: GET %s: %s", s.url, resp.Status)
	}
	return parseServerMetrics(bufio.NewScanner(resp.Body), s.url)
}

// parseServerMetrics reads the unlabelled samples the benchmark uses from
// Prometheus text format; process_cpu_seconds_total must be there.
func parseServerMetrics(sc *bufio.Scanner, url string) (serverReading, error) {
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var r serverReading
	want := map[string]*float64{"process_cpu_seconds_total": &r.cpu, "metaq_puts_total": &r.puts, "metaq_put_batches_total": &r.batches}
	sawCPU := false
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		dst, ok := want[f[0]]
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			return r, fmt.Errorf("--admin: %s: bad %s value %q", url, f[0], f[1])
		}
		*dst = v
		sawCPU = sawCPU || dst == &r.cpu
	}
	if err := sc.Err(); err != nil {
		return r, fmt.Errorf("--admin: read %s: %w", url, err)
	}
	if !sawCPU {
		return r, fmt.Errorf("--admin: %s has no process_cpu_seconds_total (not a metaq broker's admin endpoint?)", url)
	}
	return r, nil
}

// spreadOptions makes a producer spread messages round-robin over the first n
// partitions of the topic (n <= 0: the producer's default, every partition).
// In direct mode the broker is told to serve n partitions.
func spreadOptions(f benchProduceFlags) []producer.Option {
	if f.spread <= 0 {
		return nil
	}
	if f.broker != "" {
		return []producer.Option{producer.WithBroker(f.broker, f.spread)}
	}
	var seq atomic.Uint64
	n := f.spread
	return []producer.Option{producer.WithPartitioner(producer.PartitionerFunc("spread", false,
		func(_ *producer.Message, parts []producer.Partition) int {
			return int((seq.Add(1) - 1) % uint64(min(n, len(parts))))
		}))}
}
