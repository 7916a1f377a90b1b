package zkrecipes

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
)

// Option configures a Session; see Connect.
type Option func(*sessionOptions) error

type authInfo struct {
	scheme string
	data   []byte
}

type sessionOptions struct {
	sessionTimeout time.Duration
	chroot         string
	acl            []zk.ACL
	aclProvider    ACLProvider
	auth           []authInfo
	logger         *slog.Logger
	presumeLost    bool
}

func buildOptions(opts []Option) (sessionOptions, error) {
	o := sessionOptions{sessionTimeout: 10 * time.Second, acl: zk.WorldACL(zk.PermAll),
		logger: slog.New(slog.NewTextHandler(io.Discard, nil)), presumeLost: true}
	for _, fn := range opts {
		if err := fn(&o); err != nil {
			return o, err
		}
	}
	return o, nil
}

// WithSessionTimeout asks for a session timeout (default 10s; the server
// clamps it to between 2 and 20 tickTimes by default).
func WithSessionTimeout(d time.Duration) Option {
	return func(o *sessionOptions) error {
		if d <= 0 {
			return fmt.Errorf("zkrecipes: session timeout must be positive, got %v", d)
		}
		o.sessionTimeout = d
		return nil
	}
}

// WithChroot makes every path of this Session relative to root (e.g. "/app"):
// the Session prefixes it on the way out and strips it from created paths and
// watch events. The root must exist (use EnsurePath from a session without chroot).
func WithChroot(root string) Option {
	return func(o *sessionOptions) error {
		root = strings.TrimRight(root, "/")
		if root != "" {
			if err := validatePath(root); err != nil {
				return fmt.Errorf("chroot: %w", err)
			}
		}
		o.chroot = root
		return nil
	}
}

// WithACL sets the ACL of every node this Session creates (default: open to
// everyone, or creator-all plus world-read with WithDigestAuth).
func WithACL(acl []zk.ACL) Option {
	return func(o *sessionOptions) error {
		if len(acl) == 0 {
			return fmt.Errorf("zkrecipes: empty ACL would make nodes inaccessible")
		}
		o.acl = acl
		return nil
	}
}

// WithDigestAuth authenticates the session with ZooKeeper's digest scheme and
// makes created nodes writable only by this identity (readable by all), unless
// WithACL says otherwise.
func WithDigestAuth(user, password string) Option {
	return func(o *sessionOptions) error {
		if user == "" || strings.Contains(user, ":") {
			return fmt.Errorf("zkrecipes: digest user %q must be non-empty and contain no ':'", user)
		}
		o.auth = append(o.auth, authInfo{scheme: "digest", data: []byte(user + ":" + password)})
		o.acl = append(zk.AuthACL(zk.PermAll), zk.WorldACL(zk.PermRead)...)
		return nil
	}
}

// WithLogger sets the structured logger (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(o *sessionOptions) error {
		if l != nil {
			o.logger = l
		}
		return nil
	}
}

// WithPresumeLost controls whether a session that stayed disconnected for a
// whole session timeout is declared lost without waiting for the server to say
// so (default true, as Curator does). The connection is then replaced so the
// old session can never be resumed silently.
func WithPresumeLost(on bool) Option {
	return func(o *sessionOptions) error { o.presumeLost = on; return nil }
}
