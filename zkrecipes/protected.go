package zkrecipes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
)

// ProtectedPrefix starts the name of every node made by CreateProtected:
// "_c_<32 hex GUID>-<name><10-digit sequence>" (Curator's and go-zookeeper's form).
const ProtectedPrefix = "_c_"

func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ProtectedGUID returns the GUID in a protected node name, or "" if the name is not protected.
func ProtectedGUID(name string) string {
	name = path.Base(name)
	if !strings.HasPrefix(name, ProtectedPrefix) || len(name) < len(ProtectedPrefix)+33 || name[len(ProtectedPrefix)+32] != '-' {
		return ""
	}
	return name[len(ProtectedPrefix) : len(ProtectedPrefix)+32]
}

// Sequence returns the sequence number ZooKeeper appended to a sequential node name.
func Sequence(name string) (int64, error) {
	if len(name) < 10 {
		return 0, fmt.Errorf("zkrecipes: %q has no sequence suffix", name)
	}
	return strconv.ParseInt(name[len(name)-10:], 10, 64)
}

// SortBySequence sorts sequential node names by their sequence suffix (names
// without one go last) and returns the slice.
func SortBySequence(names []string) []string {
	sort.SliceStable(names, func(i, j int) bool {
		a, ea := Sequence(names[i])
		b, eb := Sequence(names[j])
		if ea != nil || eb != nil {
			return ea == nil
		}
		return a < b
	})
	return names
}

// CreateProtected creates an ephemeral node (sequential if sequential is set)
// named "_c_<guid>-<name>" under parent, creating parent if missing. If the
// reply to the create is lost, it looks for its GUID under parent after
// reconnecting instead of creating a duplicate; if ctx ends or the create fails
// for good, any node it may have made is deleted in the background, so no
// orphan outlives the call. It returns the node's full path.
func (s *Session) CreateProtected(ctx context.Context, parent, name string, data []byte, sequential bool) (string, error) {
	if err := validatePath(parent); err != nil {
		return "", err
	}
	guid := newGUID()
	nodePath := path.Join(parent, ProtectedPrefix+guid+"-"+name)
	mode := Ephemeral
	if sequential {
		mode = EphemeralSequential
	}
	for {
		created, err := s.Create(ctx, nodePath, data, mode)
		switch {
		case err == nil:
			return created, nil
		case errors.Is(err, zk.ErrNoNode):
			if err := s.EnsurePath(ctx, parent); err != nil {
				s.cleanupOrphan(parent, guid)
				return "", err
			}
			continue
		case errors.Is(err, zk.ErrNodeExists) && !sequential:
			// Only possible for our GUID if an earlier attempt's reply was lost.
			return nodePath, nil
		case ctx.Err() != nil:
			s.cleanupOrphan(parent, guid)
			return "", err
		case errors.Is(err, zk.ErrSessionExpired):
			continue // a node of the expired session is gone with it
		case IsRetriable(err):
			if werr := s.WaitConnected(ctx); werr != nil {
				s.cleanupOrphan(parent, guid)
				return "", werr
			}
			// The create may have happened: keep looking until the answer is
			// definite (a failed look followed by a new create would leave a
			// duplicate node of this GUID).
			found, ferr := s.findProtectedRetry(ctx, parent, guid)
			if ferr != nil {
				s.cleanupOrphan(parent, guid)
				return "", ferr
			}
			if found != "" {
				return found, nil
			}
			continue
		default:
			s.cleanupOrphan(parent, guid)
			return "", err
		}
	}
}

// findProtectedRetry is findProtected retried across connection problems
// until it gives a definite answer or ctx ends.
func (s *Session) findProtectedRetry(ctx context.Context, parent, guid string) (string, error) {
	for {
		found, err := s.findProtected(ctx, parent, guid)
		if err == nil {
			return found, nil
		}
		if ctx.Err() != nil || !(IsRetriable(err) || errors.Is(err, zk.ErrSessionExpired)) {
			return "", err
		}
		if werr := s.WaitConnected(ctx); werr != nil {
			return "", werr
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// findProtected returns the full path of the child of parent carrying guid, or "".
func (s *Session) findProtected(ctx context.Context, parent, guid string) (string, error) {
	kids, _, err := s.Children(ctx, parent)
	if err != nil {
		return "", err
	}
	for _, k := range kids {
		if ProtectedGUID(k) == guid {
			return path.Join(parent, k), nil
		}
	}
	return "", nil
}

// cleanupOrphan deletes, in the background, a node a failed or abandoned
// protected create may have left. It gives up when the session that could own
// the node ends (the node then goes with it) or after a few session timeouts.
func (s *Session) cleanupOrphan(parent, guid string) {
	id := s.ID()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*s.Timeout())
		defer cancel()
		go func() {
			select {
			case <-s.Expired(id):
				cancel()
			case <-ctx.Done():
			}
		}()
		for ctx.Err() == nil {
			if err := s.WaitConnected(ctx); err != nil {
				return
			}
			found, err := s.findProtected(ctx, parent, guid)
			if err == nil && found == "" {
				return
			}
			if err == nil {
				if derr := s.Delete(ctx, found, -1); derr == nil || errors.Is(derr, zk.ErrNoNode) {
					return
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
}
