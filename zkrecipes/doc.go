// Package zkrecipes is a library of ZooKeeper coordination recipes on top of
// github.com/go-zookeeper/zk, with Apache Curator as the reference for their
// semantics. It knows nothing about brokers or topics.
//
// # Session
//
// Connect returns a *Session, which every recipe uses. It adds what the raw
// client lacks:
//
//   - Connection states in Curator's model: StateConnected, StateSuspended
//     (connection dropped; what a recipe holds is in doubt), StateReconnected
//     (same session back), StateLost (session expired, or presumed expired
//     after a whole session timeout without a connection; ephemeral nodes and
//     watches are gone) and StateClosed.
//   - A reliable event stream: Subscribe delivers every state change in order
//     to each subscriber through an unbounded queue (go-zookeeper's own event
//     channel holds 6 events and drops the rest).
//   - The lost / new-session rule: a new session id is never adopted
//     silently. StateLost (with the old id) always comes first, then
//     StateConnected with Event.NewSession set; Expired(id) is closed when
//     session id ends, and ID() reports the current id (0 while lost). After
//     a presumed loss the connection is replaced, so the old session can never
//     be resumed behind a recipe's back.
//   - Every operation takes a context.Context; errors are wrapped with %w and
//     tested with errors.Is (ErrSessionLost, ErrClosed, ErrNotHeld,
//     ErrBadVersion, ErrNoNode, ErrNodeExists, and go-zookeeper's sentinels
//     such as zk.ErrNoAuth). WaitEvent waits for a watch, the session's loss
//     or ctx.
//   - WithChroot: every path is relative to a root, mapped both ways (created
//     paths, Children, Multi results and watch event paths).
//   - WithDigestAuth / WithACL: the session authenticates with the digest
//     scheme and creates nodes writable only by its identity (readable by all)
//     unless another ACL is given.
//   - Liveness: the send time of the newest request the server answered on
//     the current session, and a run number that changes whenever that proof
//     lapsed (or the session changed). A client that must not act on stale
//     ownership (self-fencing) acts only while Liveness.Answered is younger
//     than Timeout minus a safety margin, and re-checks what it owns when the
//     run changed. LastHeard (when a byte last arrived) is no such proof: an
//     answer that waited in the socket buffer while the process was stopped
//     is read "now" although the session may have expired long before.
//   - CreateProtected: an ephemeral (sequential) node named
//     "_c_<GUID>-<name>" that is found again after a lost create reply and
//     deleted if the call is cancelled or fails, so no orphan survives it.
//
// # Recipes
//
// Every recipe re-reads after each watch event (level-triggered), re-arms
// its watches after reconnects and session loss, and watches as little as
// its semantics allow. In the table, <dir> or <path> is the path given to the
// constructor.
//
//	Recipe                 Nodes                                                   Watches
//	EphemeralNode          <path> ephemeral, re-created after session loss         exists watch on its own node
//	Mutex                  <dir>/_c_<guid>-lock-<seq> ephemeral sequential         data watch on the predecessor only
//	RWLock (ReadLock,      <dir>/_c_<guid>-read-<seq>, ...-write-<seq>             writer: predecessor; reader: closest
//	  WriteLock)                                                                   preceding writer only
//	Semaphore (Lease)      <dir>/locks (a Mutex), <dir>/leases/_c_<guid>-lease-<seq>  only the internal mutex holder watches
//	                                                                               <dir>/leases children; others: predecessor
//	LeaderLatch            <dir>/_c_<guid>-latch-<seq>, data = participant id      data watch on the predecessor only
//	Barrier                <path> persistent while set                             exists watch on <path> per waiter
//	DoubleBarrier          <path>/_c_<guid>-p-<seq> ephemeral sequential,          enter: exists watch on "ready";
//	                       <path>/ready persistent                                 leave: lowest watches highest, others
//	                                                                               watch lowest (one wake per departure)
//	Queue                  <path>/qn-<guid>-<seq> persistent sequential            child watch on <path> only while empty
//	                                                                               (every idle taker: a herd per Put)
//	Counter                <path> persistent, decimal int64                        data watch per WaitChange caller
//	NodeCache              none (reads <path>)                                     data watch, exists watch while absent
//	ChildrenCache          none (reads <path> and its children)                    child watch on <path> + data watch per child
//	GroupMember            <dir>/<member id> ephemeral, re-created after loss      data watch on its own node +
//	                                                                               a ChildrenCache of <dir>
//
// Streams: NodeCache, ChildrenCache and GroupMember publish changes on
// Stream values (Subscribe), which first replay the current state and then
// deliver every change in order without dropping.
//
// Tests run against a real ZooKeeper (package zktest), including real session
// expiry and a fault proxy that drops, freezes or cuts connections.
package zkrecipes
