// Package producer is the Go client that sends messages to a MetaQ cluster.
//
// A Producer finds brokers and partitions in ZooKeeper (WithZooKeeper) and
// follows changes, or talks to one broker directly (WithBroker). It keeps one
// pipelined connection per broker: every message is a `put` with a checksum,
// many are in flight at once, and the frames queued while the connection is
// busy leave in one write. Acknowledgements come back when the broker has
// made the message as durable as its flush mode promises (after fsync with
// the default group commit).
//
//	p, err := producer.New(ctx, producer.WithZooKeeper([]string{"127.0.0.1:2181"}, "/meta"))
//	if err != nil { ... }
//	defer p.Close(ctx)
//	res, err := p.Send(ctx, producer.Message{Topic: "orders", Payload: data})
//
// # Sending
//
// Send waits for the acknowledgement; SendAsync queues the message and calls
// a callback exactly once with the Result or the error. SendAsync returns as
// soon as the message is written to its connection's buffer; only the first
// message of a topic (discovery) or to a broker (dial) waits, within its ctx. At most MaxInFlight
// messages are outstanding: beyond that both block until a slot frees or
// their ctx ends. Flush waits for everything in flight; Close flushes within
// its ctx and then reports what is left as failed with ErrClosed.
//
// # Partitions and failures
//
// RoundRobin (the default) and Random spread messages over the partitions
// available now: when a broker leaves ZooKeeper, or its connection fails, the
// next attempts go to the other brokers. ByKey keeps every message of a key
// on one partition, in order; if that partition's broker is gone the message
// fails with ErrPartitionUnavailable (retriable) rather than silently moving,
// so a failover never moves a key. Adding brokers to a topic does remap keys
// (as adding partitions does in Kafka). Per-key order holds for messages that
// are not retried: when a connection breaks, its in-flight messages are
// retried and may land after messages of the same key sent later — use Send
// (one message at a time per key) where that matters.
//
// Retriable failures (a lost connection, a busy or shutting-down broker, no
// partition available) are retried with exponential backoff (WithRetry)
// while the message's ctx allows. A message whose connection broke after it
// was written may have been stored: delivery is at least once. Every error
// wraps a sentinel for errors.Is (ErrNoPartitions, ErrMessageTooLarge,
// ErrClosed, ...) and IsRetriable says whether sending again may help.
//
// # Observability
//
// Stats returns counters and latency percentiles; Hooks observe every
// acknowledgement, failure, retry and connection; WithLogger takes a
// *slog.Logger (default: discard).
//
// # Security
//
// WithTLSFiles (a CA file, and a client certificate and key for mutual TLS)
// or WithTLS (a *tls.Config) make every broker connection use TLS 1.2+;
// WithSASL authenticates every connection, and every reconnect, with
// SCRAM-SHA-256 (default) or PLAIN before any other request. Refused
// credentials are ErrAuth, with the broker's reason and never the password.
// docs/security-clients.md has examples.
package producer
