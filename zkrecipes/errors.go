package zkrecipes

import (
	"errors"

	"github.com/go-zookeeper/zk"
)

// Sentinel errors. Errors returned by this package wrap these (and
// go-zookeeper's own sentinels such as zk.ErrNodeExists), so test them with
// errors.Is.
var (
	// ErrSessionLost means the ZooKeeper session ended (expired, or presumed
	// expired after being disconnected for a whole session timeout): every
	// ephemeral node and watch of it is gone and what a recipe held is lost.
	ErrSessionLost = errors.New("zkrecipes: ZooKeeper session lost")
	// ErrClosed means the Session or recipe was closed.
	ErrClosed = errors.New("zkrecipes: closed")
	// ErrNotHeld means a release of something not held (lock, lease, leadership).
	ErrNotHeld = errors.New("zkrecipes: not held")
	// ErrNotConnected means an operation needed a connection and there was none
	// before the context ended.
	ErrNotConnected = errors.New("zkrecipes: not connected to ZooKeeper")
	// ErrBadPath means a path is not a valid absolute ZooKeeper path.
	ErrBadPath = errors.New("zkrecipes: invalid path")
	// ErrBadVersion re-exports zk.ErrBadVersion: a compare-and-set lost its race.
	ErrBadVersion = zk.ErrBadVersion
	// ErrNoNode re-exports zk.ErrNoNode.
	ErrNoNode = zk.ErrNoNode
	// ErrNodeExists re-exports zk.ErrNodeExists.
	ErrNodeExists = zk.ErrNodeExists
)

// IsRetriable reports whether err is a transient connection problem after
// which the same operation may succeed (not a logical refusal and not a lost
// session).
func IsRetriable(err error) bool {
	return errors.Is(err, zk.ErrConnectionClosed) || errors.Is(err, zk.ErrNoServer) ||
		errors.Is(err, ErrNotConnected) || errors.Is(err, zk.ErrClosing)
}
