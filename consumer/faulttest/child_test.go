package faulttest

// The consumer child: the test binary re-executed with childEnv set joins a
// group as one consumer process and writes an audit log.
//
// Audit log lines (one write(2) each, O_APPEND, so a SIGKILL loses nothing
// that was written; fsynced every 100 ms):
//
//	<unix-nanos> <member> <topic> <brokerId>-<partition> <offset> <seq>    a delivery (seq: the producer's sequence number, -1 if unknown)
//	<unix-nanos> <member> <topic> <brokerId>-<partition> <offset> <seq> <poll-start-nanos>
//	                                                                     a delivery by Poll: stamped when Poll returned, and
//	                                                                     when the Poll call began (see cluster.analyze)
//	<unix-nanos> <member> event <kind> <arg>                             an event
//
// <member> is the child's name, unique per process (the coordinator member id
// is the argument of the "start" event). Event kinds: start <memberId>,
// assigned|revoked|lost <topic/b-p,...>, suspended, resumed, commiterrors <n>,
// zcommit <topic/b-p>:<offset>:<ok|notowner|err <text>>, closed <ok|err>.
//
// Signals: SIGTERM closes the consumer cleanly and exits 0; SIGUSR1 commits
// the last delivered message of every partition the child ever delivered
// from (the zombie-commit probe) and logs each result.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/metaq-go/metaq/consumer"
)

// childEnv carries the child's JSON configuration.
const childEnv = "METAQ_FAULTTEST_CHILD"

type childConfig struct {
	Name       string        `json:"name"`
	ZK         string        `json:"zk"`
	Root       string        `json:"root"`
	Group      string        `json:"group"`
	Topic      string        `json:"topic"`
	Audit      string        `json:"audit"`
	Session    time.Duration `json:"session"`
	AutoCommit time.Duration `json:"autoCommit"`
	Work       time.Duration `json:"work"`    // simulated work per message
	Verbose    bool          `json:"verbose"` // log at Info (session states) instead of Warn
	Poll       bool          `json:"poll"`    // poll style (WithTopics + Poll) instead of a handler
	// Flaky: the handler fails the first attempt at every message (the
	// consumer retries it after 20 ms); only the successful attempt is
	// logged as a delivery.
	Flaky bool `json:"flaky"`
}

// auditLog appends lines to the audit file, one write per line.
type auditLog struct {
	name string
	mu   sync.Mutex // serialises writes and guards buf
	f    *os.File
	buf  []byte
}

func (a *auditLog) write(fill func(b []byte) []byte) { a.writeAt(time.Now(), fill) }

// writeAt writes a line stamped with at (taken by the caller before it waits
// for the lock, so a delivery's stamp is the moment its handler was called).
func (a *auditLog) writeAt(at time.Time, fill func(b []byte) []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	b := strconv.AppendInt(a.buf[:0], at.UnixNano(), 10)
	b = append(b, ' ')
	b = append(b, a.name...)
	b = append(b, ' ')
	b = fill(b)
	b = append(b, '\n')
	a.buf = b
	if _, err := a.f.Write(b); err != nil {
		fmt.Fprintln(os.Stderr, "child: audit write:", err)
		os.Exit(4)
	}
}

// delivery logs m as delivered at at; pollStart, when not zero, is when the
// Poll call that returned m began.
func (a *auditLog) delivery(at, pollStart time.Time, m *consumer.Message) {
	a.writeAt(at, func(b []byte) []byte {
		b = append(b, m.Topic...)
		b = append(b, ' ')
		b = strconv.AppendInt(b, int64(m.BrokerID), 10)
		b = append(b, '-')
		b = strconv.AppendInt(b, int64(m.Partition), 10)
		b = append(b, ' ')
		b = strconv.AppendInt(b, m.Offset, 10)
		b = append(b, ' ')
		b = strconv.AppendInt(b, payloadSeq(m.Payload), 10)
		if !pollStart.IsZero() {
			b = append(b, ' ')
			b = strconv.AppendInt(b, pollStart.UnixNano(), 10)
		}
		return b
	})
}

func (a *auditLog) event(kind, arg string) {
	if arg == "" {
		arg = "-"
	}
	a.write(func(b []byte) []byte {
		b = append(b, "event "...)
		b = append(b, kind...)
		b = append(b, ' ')
		return append(b, arg...)
	})
}

// payloadSeq parses the producer's "m<seq>" payload; -1 if it is not one.
func payloadSeq(p []byte) int64 {
	if len(p) < 2 || p[0] != 'm' {
		return -1
	}
	n, err := strconv.ParseInt(string(p[1:]), 10, 64)
	if err != nil {
		return -1
	}
	return n
}

func tpList(tps []consumer.TopicPartition) string {
	s := make([]string, len(tps))
	for i, tp := range tps {
		s[i] = tp.String()
	}
	return strings.Join(s, ",")
}

func runChild(raw string) int {
	var cfg childConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "child: config:", err)
		return 2
	}
	f, err := os.OpenFile(cfg.Audit, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	a := &auditLog{name: cfg.Name, f: f}
	level := slog.LevelWarn
	if cfg.Verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("child", cfg.Name)

	var lastMu sync.Mutex // guards last
	last := map[consumer.TopicPartition]*consumer.Message{}

	var style []consumer.Option
	if cfg.Poll {
		style = append(style, consumer.WithTopics(cfg.Topic))
	}
	if cfg.Flaky {
		style = append(style, consumer.WithRetry(0, 20*time.Millisecond))
	}
	c, err := consumer.New(cfg.Group, append(style,
		consumer.WithZooKeeper([]string{cfg.ZK}, cfg.Root),
		consumer.WithSessionTimeout(cfg.Session),
		consumer.WithAutoCommit(cfg.AutoCommit),
		consumer.WithLongPoll(200*time.Millisecond),
		consumer.WithLogger(log),
		consumer.WithRebalanceListener(consumer.RebalanceListener{
			Assigned: func(_ context.Context, tps []consumer.TopicPartition) { a.event("assigned", tpList(tps)) },
			Revoked:  func(_ context.Context, tps []consumer.TopicPartition) { a.event("revoked", tpList(tps)) },
			Lost:     func(tps []consumer.TopicPartition) { a.event("lost", tpList(tps)) },
		}))...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	process := func(ctx context.Context, at, pollStart time.Time, m *consumer.Message) {
		a.delivery(at, pollStart, m)
		lastMu.Lock()
		last[m.TopicPartition()] = m
		lastMu.Unlock()
		if cfg.Work > 0 {
			t := time.NewTimer(cfg.Work) // simulated processing time of the message
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
	}
	failed := map[consumer.TopicPartition]int64{} // flaky: the offset whose first attempt failed; one goroutine per partition
	var failedMu sync.Mutex                       // guards failed
	if !cfg.Poll {
		if err := c.Subscribe(cfg.Topic, func(ctx context.Context, m *consumer.Message) error {
			if cfg.Flaky {
				failedMu.Lock()
				first := failed[m.TopicPartition()] != m.Offset+1
				failed[m.TopicPartition()] = m.Offset + 1
				failedMu.Unlock()
				if first {
					return errors.New("flaky handler: first attempt fails")
				}
			}
			process(ctx, time.Now(), time.Time{}, m)
			return nil
		}); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			return 2
		}
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGUSR1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err = c.Start(ctx)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: start:", err)
		return 2
	}
	a.event("start", c.MemberID())
	pollCtx, stopPolling := context.WithCancel(context.Background())
	defer stopPolling()
	polling := make(chan struct{})
	if cfg.Poll {
		go func() { // a message counts as processed at the next Poll call
			defer close(polling)
			for {
				pollStart := time.Now()
				msgs, err := c.Poll(pollCtx, 16)
				at := time.Now()
				if err != nil {
					if pollCtx.Err() != nil || errors.Is(err, consumer.ErrClosed) {
						return
					}
					log.Warn("poll", "err", err)
					continue
				}
				for _, m := range msgs {
					process(pollCtx, at, pollStart, m)
				}
			}
		}()
	} else {
		close(polling)
	}
	fmt.Printf("READY %s\n", c.MemberID())

	go func() { // state monitor and periodic fsync
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		suspended := false
		var commitErrs int64
		lastSync := time.Now()
		for range t.C {
			st := c.Stats()
			if st.Suspended != suspended {
				suspended = st.Suspended
				if suspended {
					a.event("suspended", "")
				} else {
					a.event("resumed", "")
				}
			}
			if st.CommitErrors != commitErrs {
				commitErrs = st.CommitErrors
				a.event("commiterrors", strconv.FormatInt(commitErrs, 10))
			}
			if time.Since(lastSync) >= 100*time.Millisecond {
				_ = f.Sync()
				lastSync = time.Now()
			}
		}
	}()

	for sig := range sigs {
		switch sig {
		case syscall.SIGUSR1:
			lastMu.Lock()
			msgs := make([]*consumer.Message, 0, len(last))
			for _, m := range last {
				msgs = append(msgs, m)
			}
			lastMu.Unlock()
			for _, m := range msgs {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				err := c.Commit(ctx, m)
				cancel()
				res := "ok"
				switch {
				case errors.Is(err, consumer.ErrNotOwner):
					res = "notowner"
				case err != nil:
					res = "err " + err.Error()
				}
				a.event("zcommit", fmt.Sprintf("%s:%d:%s", m.TopicPartition(), m.NextOffset, res))
			}
		case syscall.SIGTERM:
			stopPolling() // the poll loop ends first: nothing is handled after the revocation
			<-polling
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			err := c.Close(ctx)
			cancel()
			res := "ok"
			if err != nil {
				res = "err"
				log.Warn("close", "err", err)
			}
			a.event("closed", res)
			_ = f.Sync()
			if err != nil {
				return 3
			}
			return 0
		}
	}
	return 0
}
