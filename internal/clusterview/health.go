package clusterview

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/metaq-go/metaq/coordinator"
)

// HealthResult is one broker's answer in `metaq healthcheck`.
type HealthResult struct {
	ID      *int   `json:"id,omitempty"` // set when found in ZooKeeper
	Addr    string `json:"addr"`
	Healthy bool   `json:"healthy"`
	Version string `json:"version,omitempty"`
	Latency string `json:"latency,omitempty"`
	Error   string `json:"error,omitempty"`
}

// HealthReport is the output of `metaq healthcheck`.
type HealthReport struct {
	Healthy bool           `json:"healthy"`
	Brokers []HealthResult `json:"brokers"`
	Problem string         `json:"problem,omitempty"`
}

// CheckBroker sends `version` and waits for a 200.
func CheckBroker(ctx context.Context, addr string, timeout time.Duration) HealthResult {
	res := HealthResult{Addr: addr}
	if addr == "" {
		res.Error = "no address: the URI in ZooKeeper is not meta://host:port"
		return res
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	c, err := DialBroker(ctx, addr)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer c.Close()
	v, err := c.Version(ctx)
	if err != nil {
		res.Error = BrokerErr(addr, "version", err).Error()
		return res
	}
	res.Healthy, res.Version = true, v
	res.Latency = time.Since(start).Round(time.Microsecond).String()
	return res
}

// HealthTarget is a broker to check: its address, and its id when it comes
// from ZooKeeper.
type HealthTarget struct {
	ID   *int
	Addr string
}

// CheckAll sends `version` to every target concurrently (each within
// timeout); the report is healthy when all answer.
func CheckAll(ctx context.Context, targets []HealthTarget, timeout time.Duration) HealthReport {
	results := make([]HealthResult, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			results[i] = CheckBroker(ctx, t.Addr, timeout)
			results[i].ID = t.ID
		})
	}
	wg.Wait()
	rep := HealthReport{Healthy: true, Brokers: results}
	for _, r := range results {
		rep.Healthy = rep.Healthy && r.Healthy
	}
	return rep
}

// CheckRegistered checks every registered broker of brokers (ListBrokers);
// fewer than expect registered ones make the report unhealthy.
func CheckRegistered(ctx context.Context, brokers []Broker, expect int, p coordinator.Paths, timeout time.Duration) HealthReport {
	var targets []HealthTarget
	for _, br := range brokers {
		if br.Registered {
			targets = append(targets, HealthTarget{ID: &br.ID, Addr: br.Addr})
		}
	}
	rep := CheckAll(ctx, targets, timeout)
	if len(targets) < expect {
		rep.Healthy = false
		rep.Problem = fmt.Sprintf("%d broker(s) registered under %s, expected at least %d", len(targets), p.BrokerIDs(), expect)
	}
	return rep
}
