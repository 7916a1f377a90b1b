package consumer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/metaq-go/metaq/coordinator"
)

// fileOffsets keeps broadcast-mode offsets in files:
//
//	<dir>/<topic>/<brokerId>-<partition>   "<msgId>-<offset>" (the ZooKeeper format)
//
// written crash-safely: a temp file in the same directory, fsync, rename over
// the old file, fsync the directory. A torn temp file is ignored on load.
type fileOffsets struct {
	dir string
}

func (f *fileOffsets) init() error {
	if err := os.MkdirAll(f.dir, 0o755); err != nil {
		return fmt.Errorf("consumer: broadcast offset directory: %w", err)
	}
	return nil
}

func (f *fileOffsets) path(tp TopicPartition) string {
	return filepath.Join(f.dir, tp.Topic, coordinator.PartitionName(tp.BrokerID, tp.Partition))
}

func (f *fileOffsets) load(tp TopicPartition) (coordinator.Offset, bool, error) {
	data, err := os.ReadFile(f.path(tp))
	if errors.Is(err, os.ErrNotExist) {
		return coordinator.Offset{}, false, nil
	}
	if err != nil {
		return coordinator.Offset{}, false, err
	}
	o, err := coordinator.ParseOffset(strings.TrimSpace(string(data)))
	if err != nil {
		return coordinator.Offset{}, false, fmt.Errorf("consumer: offset file %s: %w", f.path(tp), err)
	}
	return o, true, nil
}

func (f *fileOffsets) store(tp TopicPartition, o coordinator.Offset) error {
	p := f.path(tp)
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(p)+"-*")
	if err != nil {
		return err
	}
	_, err = tmp.WriteString(o.String() + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), p)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	_ = d.Close()
	return err
}

// syncBroadcast starts fetchers for every subscribable partition of the
// topics and stops those no broker offers any more.
func (c *Consumer) syncBroadcast(ctx context.Context) error {
	want := map[TopicPartition]bool{}
	for _, t := range c.topics() {
		ps, err := coordinator.SubscribablePartitions(ctx, c.sess, c.paths, t)
		if err != nil {
			return err
		}
		for _, p := range ps {
			want[TopicPartition{Topic: t, BrokerID: p.BrokerID, Partition: p.Partition}] = true
		}
	}
	var add, gone []TopicPartition
	c.mu.Lock()
	for tp := range want {
		if c.parts[tp] == nil {
			add = append(add, tp)
		}
	}
	for tp := range c.parts {
		if !want[tp] {
			gone = append(gone, tp)
		}
	}
	c.mu.Unlock()
	if len(gone) > 0 {
		parts := c.removeParts(gone)
		c.stopParts(ctx, parts, false)
		for _, ps := range parts {
			if err := c.commitPart(ctx, ps); err != nil {
				c.log.Warn("consumer: broadcast commit", "partition", ps.tp, "err", err)
			}
		}
	}
	c.addParts(add)
	return nil
}

// broadcastLoop follows the cluster view: a broker or topic change
// re-reads the subscribable partitions.
func (c *Consumer) broadcastLoop() {
	defer c.wg.Done()
	for _, t := range c.topics() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = c.view.Watch(ctx, t) // so that topic changes fire Changed
		cancel()
	}
	for {
		select {
		case <-c.view.Changed():
		case <-c.stop:
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := c.syncBroadcast(ctx); err != nil {
			c.log.Warn("consumer: broadcast: reading partitions", "err", err)
		}
		cancel()
	}
}
