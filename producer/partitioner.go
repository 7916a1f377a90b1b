package producer

import (
	"math/rand/v2"

	"github.com/metaq-go/metaq/coordinator"
)

// Partition names a partition: broker id, partition number and the broker's
// address. String() gives MetaQ's "<brokerId>-<partition>".
type Partition = coordinator.BrokerPartition

// Partitioner chooses a message's partition. Make one with RoundRobin,
// Random, ByKey or PartitionerFunc.
//
// An unordered partitioner chooses among the partitions available now;
// when its choice fails, a retry may go anywhere. An ordered partitioner
// chooses among every partition the producer has seen for the topic
// (including those of brokers that are gone), so a key keeps its partition
// while brokers come and go; a message whose partition is unavailable fails
// with ErrPartitionUnavailable (retriable) instead of moving. Adding brokers
// (partitions) to a topic does change the mapping, as in Kafka.
type Partitioner struct {
	name     string
	ordered  bool
	needsKey bool
	pick     func(msg *Message, parts []Partition, seq uint64) int
}

// String returns the partitioner's name.
func (p Partitioner) String() string { return p.name }

// Ordered reports whether the partitioner pins messages to partitions.
func (p Partitioner) Ordered() bool { return p.ordered }

// RoundRobin spreads messages evenly over the available partitions (default).
func RoundRobin() Partitioner {
	return Partitioner{name: "round-robin", pick: func(_ *Message, parts []Partition, seq uint64) int {
		return int(seq % uint64(len(parts)))
	}}
}

// Random picks an available partition at random.
func Random() Partitioner {
	return Partitioner{name: "random", pick: func(_ *Message, parts []Partition, _ uint64) int {
		return rand.IntN(len(parts))
	}}
}

// ByKey sends messages with the same Key to the same partition (FNV-1a of
// the key modulo the number of partitions seen), in order. Messages without
// a key fail with ErrInvalidMessage. See Partitioner for what happens when
// the key's broker is gone.
func ByKey() Partitioner {
	return Partitioner{name: "by-key", ordered: true, needsKey: true, pick: func(m *Message, parts []Partition, _ uint64) int {
		return int(fnv1a(m.Key) % uint32(len(parts)))
	}}
}

// PartitionerFunc makes a custom partitioner: f returns an index into parts
// (sorted by broker id, then partition). With ordered, parts are every
// partition seen for the topic and an unavailable choice fails; otherwise
// parts are the available ones and an out-of-range index is reduced modulo
// len(parts).
func PartitionerFunc(name string, ordered bool, f func(msg *Message, parts []Partition) int) Partitioner {
	return Partitioner{name: name, ordered: ordered, pick: func(m *Message, parts []Partition, _ uint64) int {
		return f(m, parts)
	}}
}

// fnv1a is the 32-bit FNV-1a hash (as hash/fnv, without allocating).
func fnv1a(b []byte) uint32 {
	h := uint32(2166136261)
	for _, c := range b {
		h ^= uint32(c)
		h *= 16777619
	}
	return h
}
