package broker_test

import (
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/internal/tlsconf/tlstest"
)

// BenchmarkTLSPut compares pipelined 100-byte puts over plaintext and over
// TLS through the broker's relay (same broker, same run; the bar is
// TLS ≥ 70% of plaintext).
//
//	nice go test -run '^$' -bench TLSPut -benchtime 100000x ./broker/
func BenchmarkTLSPut(b *testing.B) {
	ca := tlstest.NewCA(b, "ca")
	// One broker: its TLS port and its plaintext port share everything else.
	br := startTLSBroker(b, newTLSFiles(b, ca), "", func(o *broker.Options) { o.PlaintextAddr = "127.0.0.1:0" })
	pool := ca.Pool()
	for _, conns := range []int{1, 4} {
		for _, mode := range []string{"plain", "tls"} {
			b.Run(fmt.Sprintf("%s/conns=%d", mode, conns), func(b *testing.B) {
				addr := br.Addr()
				dial := func() (net.Conn, error) {
					return tls.Dial("tcp", addr, &tls.Config{RootCAs: pool})
				}
				if mode == "plain" {
					addr = br.PlaintextAddr()
					dial = func() (net.Conn, error) { return net.Dial("tcp", addr) }
				}
				per := max(b.N/conns, 1)
				b.SetBytes(100)
				cpu0 := cpuTime()
				b.ResetTimer()
				var wg sync.WaitGroup
				for i := 0; i < conns; i++ {
					c, err := dial()
					if err != nil {
						b.Fatal(err)
					}
					wg.Add(1)
					go func(i int) {
						defer wg.Done()
						defer c.Close()
						rawPipelineOn(b, c, "tlsbench", i%2, 1, per, 100, 2048)
					}(i)
				}
				wg.Wait()
				b.StopTimer()
				total := per * conns
				b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "msgs/s")
				b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(total), "cpu-us/msg")
			})
		}
	}
}
