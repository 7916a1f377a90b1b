// Package consumer is the Go consumer of metaq (and of MetaQ brokers): a
// member of a consumer group coordinated by the herd-free protocol of
// docs/REBALANCE.md (package coordinator), or, with WithBroadcast, a
// stand-alone reader of every partition.
//
// # Styles
//
// Handler style: Subscribe a Handler per topic, then Start. Messages of one
// partition are handled one at a time, in order; partitions run in
// parallel, at most WithConcurrency handlers at once.
//
//	c, err := consumer.New("billing", consumer.WithZooKeeper([]string{"127.0.0.1:2181"}, "/meta"))
//	if err != nil { ... }
//	c.Subscribe("orders", func(ctx context.Context, m *consumer.Message) error {
//		return process(m.Payload) // an error retries the message (WithRetry)
//	})
//	if err := c.Start(ctx); err != nil { ... }
//	<-ctx.Done()
//	c.Close(context.Background()) // finishes in-flight handlers, commits, leaves the group
//
// Poll style: WithTopics, Start, then Poll or range over Messages. Fetchers
// fill a bounded buffer (WithBufferBatches) and stop when it is full.
//
//	c, _ := consumer.New("audit", consumer.WithZooKeeper(zk, ""), consumer.WithTopics("orders"))
//	_ = c.Start(ctx)
//	for m, err := range c.Messages(ctx) { ... }
//
// # Fetching
//
// Every owned partition has one fetcher goroutine. It starts at the committed
// offset, or, when none was committed, at the start position (WithStart:
// earliest, latest or an explicit offset). One connection per broker is
// shared by all its partitions (requests are pipelined). A reply with
// messages is decoded on the connection's reader goroutine and, when there
// is room, handed on from there with the next get sent at once; when the
// handler or the poller is behind, the next get is sent before the fetcher
// waits for room, so the fetch pipeline stays full. The broker's
// `version` is asked once per connection: when it advertises long polls,
// a caught-up get waits at the broker (WithLongPoll, default 500 ms) so a new
// message is delivered within about a millisecond and an idle consumer sends
// about two requests a second per partition; otherwise a caught-up
// partition is polled with exponential back-off from 10 ms to 1 s, reset
// when data arrives (a partition nothing was ever written to is always
// polled that way, as the broker answers it at once).
//
// A 301 reply (offset before the log start, e.g. after retention, or beyond
// its end) is adopted and logged. When the first message of a reply is
// incomplete (a message larger than the fetch size, on a MetaQ broker) the
// partition's fetch size is doubled up to MaxFetchBytesCap.
//
// Corrupt data is never delivered: a message whose CRC does not match (or a
// broker refusing to serve corrupt data) stops its partition at that offset.
// The messages before it are delivered; the partition's PartitionStats.Err
// says why it stopped, Stats.ChecksumErrors counts it, an error is logged,
// and the fetch is retried with back-off from 1 s to 30 s (so corruption in
// transit heals by itself). Skipping is deliberately not automatic: an
// operator who decides to skip the message rewinds/advances the group's
// offset (coordinator ResetOffset / `metaq groups`).
//
// # Commits and delivery guarantee
//
// Offsets are stored as MetaQ does (`<msgId>-<offset>` in ZooKeeper, the
// offset after the last processed message), fenced by ownership: a consumer
// that lost a partition can never overwrite its offset (ErrNotOwner).
// A message is processed when its handler returned nil (or it was filtered
// out, or dead-lettered), in poll style when the next Poll call is made (or
// the iterator's loop body returns).
//
// With auto-commit (default every second) the highest processed position of
// every partition is committed each interval, on revocation — synchronously,
// after fetching stopped and in-flight handlers returned, before ownership is
// released, so the next owner starts exactly there — and on Close. Delivery
// is at-least-once: after a crash or a lost session (Lost: no commit is
// possible) the messages processed since the last commit are delivered again;
// at most one auto-commit interval of messages, plus the in-flight window
// (the fetched but unprocessed batches: at most three fetches per partition in
// handler style, WithBufferBatches in poll style), none of which were
// committed. On a clean rebalance or Close nothing is delivered twice.
// WithManualCommit leaves commits to Commit (in Revoked of
// WithRebalanceListener is the last chance for a partition).
//
// In poll style a revocation waits (up to 10 s) for the next Poll call before
// it commits and releases a partition some of whose messages are still in the
// caller's hands, so the next owner does not start while they are processed.
//
// # Self-fencing
//
// A message (or a retry of one, or a dead-letter attempt) is handed out only
// while the consumer can prove it still owns the partition
// (coordinator.Group.MayDeliver, checked per message): the newest ZooKeeper
// request that was answered was SENT less than the session timeout minus a
// third of it ago — the time an answer was read proves nothing after a
// process pause —, ownership was re-read after any lapse of that proof, and
// the consumer's watch on its own owner node did not fire and no commit was
// refused. So a process woken from SIGSTOP after its session expired hands out
// nothing of its old partitions, not even what it had fetched before. When
// the member cannot be sure its session is alive (Suspended) nothing new is
// handed out at all — fetchers pause, handlers are not called for further
// messages, Poll returns nothing — until it is Resumed. Partitions Lost (with
// the session, or because the owner node was changed or deleted) are dropped
// at once (handlers' ctx is cancelled), reported to RebalanceListener.Lost,
// logged at Warn and counted in Stats.PartitionsLost.
//
// # Broadcast
//
// WithBroadcast(dir): every instance consumes every partition that brokers
// offer for its topics (no group ownership); offsets are files
// <dir>/<topic>/<brokerId>-<partition>, written with temp file + fsync +
// rename + directory fsync, read back at start.
//
// # Retries, dead letters, filters
//
// A handler error retries the message after WithRetry's back-off (forever
// by default, so a poison message holds its partition, visible in Stats);
// with a limit, the message then goes to the WithDeadLetter hook (retried
// until it succeeds) or, without one, is logged and skipped. WithFilter
// skips messages (they count as processed and are committed).
//
// # Lifetimes
//
// The consumer never reuses a Message or its Payload: each fetch allocates
// one slab of Message structs and one buffer for the reply, shared by its
// messages (no allocation per message except Attribute strings).
//
// # Security
//
// WithTLSFiles (a CA file, and a client certificate and key for mutual TLS)
// or WithTLS (a *tls.Config) make every broker connection use TLS 1.2+;
// WithSASL authenticates every connection, and every reconnect, with
// SCRAM-SHA-256 (default) or PLAIN before any other request. Refused
// credentials are ErrAuth, with the broker's reason and never the password.
// docs/security-clients.md has examples.
package consumer
