package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/metaq-go/metaq/internal/latencyhist"
)

// header is the start of every payload, as in `metaq bench e2e`.
const header = latencyhist.StampSize

type redisFlags struct {
	addr     string
	rate     int
	duration time.Duration
	size     int
	drain    time.Duration
	senders  int
	json     bool
	hist     bool
}

func redisE2ECmd(ctx context.Context, args []string, out io.Writer) error {
	var f redisFlags
	fs := flag.NewFlagSet("redis-e2e", flag.ContinueOnError)
	fs.StringVar(&f.addr, "addr", "127.0.0.1:6379", "Redis host:port")
	fs.IntVar(&f.rate, "rate", 10000, "messages per second")
	fs.DurationVar(&f.duration, "duration", 5*time.Second, "how long to send")
	fs.IntVar(&f.size, "size", 100, fmt.Sprintf("payload bytes per message (at least %d)", header))
	fs.DurationVar(&f.drain, "drain", 10*time.Second, "after the last send, wait this long for the rest")
	fs.IntVar(&f.senders, "senders", 4, "producer connections (each sends one pipeline of the messages due at a time)")
	fs.BoolVar(&f.json, "json", false, "print one JSON object")
	fs.BoolVar(&f.hist, "histogram", false, "include the full latency distribution")
	if err := parse(fs, args); err != nil {
		return err
	}
	if f.rate <= 0 || f.duration <= 0 || f.drain <= 0 || f.senders <= 0 {
		return usageError{errors.New("redis-e2e: need --rate, --duration, --drain and --senders > 0")}
	}
	if f.size < header {
		return usageError{fmt.Errorf("redis-e2e: --size %d: at least %d (the payload carries a run id and the send time)", f.size, header)}
	}
	r, err := redisE2E(ctx, f)
	if err != nil {
		return err
	}
	return printResult(out, r, f.json)
}

func redisE2E(ctx context.Context, f redisFlags) (result, error) {
	r := result{Workload: "redis-e2e", Size: f.size}
	var id [8]byte
	_, _ = rand.Read(id[:])
	run := binary.BigEndian.Uint64(id[:])
	key := "peerbench:" + hex.EncodeToString(id[:])

	prod := redis.NewClient(&redis.Options{Addr: f.addr, PoolSize: f.senders, MinIdleConns: f.senders})
	defer prod.Close()
	cons := redis.NewClient(&redis.Options{Addr: f.addr, PoolSize: 1})
	defer cons.Close()
	if err := prod.Ping(ctx).Err(); err != nil {
		return r, fmt.Errorf("redis at %s: %w (is redis-server running there?)", f.addr, err)
	}
	defer prod.Del(context.Background(), key)

	var hist latencyhist.Hist
	var received, last atomic.Int64
	rctx, stopRecv := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		lastID := "0-0" // the stream is new: everything in it is this run's
		for rctx.Err() == nil {
			res, err := cons.XRead(rctx, &redis.XReadArgs{Streams: []string{key, lastID}, Count: 4096, Block: 100 * time.Millisecond}).Result()
			if err != nil {
				continue // redis.Nil: nothing within Block; or stopped
			}
			now := time.Now().UnixNano()
			for _, s := range res {
				for _, m := range s.Messages {
					lastID = m.ID
					p, _ := m.Values["p"].(string)
					sent, ok := latencyhist.ReadStamp([]byte(p), run)
					if !ok {
						continue
					}
					hist.Add(time.Duration(now - sent))
					received.Add(1)
				}
			}
			last.Store(now)
		}
	}()
	defer func() { stopRecv(); wg.Wait() }()

	c, err := startClock()
	if err != nil {
		return r, err
	}
	start := time.Now()
	sent, failed := redisSend(ctx, prod, key, run, f)
	deadline := time.Now().Add(f.drain)
	for received.Load() < sent-failed && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	r.Messages = received.Load()
	r.Failed = sent - r.Messages
	if l := time.Unix(0, last.Load()); r.Messages > 0 && l.After(start) {
		r.Seconds = l.Sub(start).Seconds()
		r.MsgsPerS = float64(r.Messages) / r.Seconds
	}
	if err := c.finish(&r); err != nil {
		return r, err
	}
	r.fill(&hist, f.hist)
	return r, ctx.Err()
}

// redisSend sends rate messages per second for the duration, paced against
// the start time like `metaq bench e2e` (a late tick sends what is due at
// once). Each tick's messages go as one pipeline to whichever of the
// senders is free, so a slow reply does not delay the next tick's sends
// (as metaq's asynchronous producer does not). It returns how many were
// sent and how many failed.
func redisSend(ctx context.Context, c *redis.Client, key string, run uint64, f redisFlags) (sent, failed int64) {
	total := int64(f.rate) * int64(f.duration) / int64(time.Second)
	batches := make(chan [][]byte, 1024)
	var nFailed atomic.Int64
	var wg sync.WaitGroup
	for range f.senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
					for _, m := range b {
						p.XAdd(ctx, &redis.XAddArgs{Stream: key, Values: []any{"p", m}, MaxLen: 1_000_000, Approx: true})
					}
					return nil
				})
				if err != nil {
					n := int64(len(b))
					if len(cmds) == len(b) {
						n = 0
						for _, cmd := range cmds {
							if cmd.Err() != nil {
								n++
							}
						}
					}
					nFailed.Add(n)
				}
			}
		}()
	}
	interval := time.Second / time.Duration(f.rate)
	t := time.NewTicker(max(interval, time.Millisecond))
	start := time.Now()
	for sent < total && ctx.Err() == nil {
		due := min(total, int64(time.Since(start)/interval)+1)
		var b [][]byte
		for ; sent < due; sent++ {
			b = append(b, latencyhist.Stamped(run, time.Now().UnixNano(), f.size))
		}
		if len(b) > 0 {
			batches <- b
		}
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
	t.Stop()
	close(batches)
	wg.Wait()
	return sent, nFailed.Load()
}
