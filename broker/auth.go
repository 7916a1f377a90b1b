package broker

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/metaq-go/metaq/internal/security"
	"github.com/metaq-go/metaq/protocol"
)

// Authentication and authorisation on the wire (docs/SECURITY.md,
// PROTOCOL.md "Authentication").
//
// Security is on when [security] names a users file or an ACL file, or
// refuses anonymous access. Then every connection has a principal before
// it may send anything but auth, version and quit: the user of its last
// successful auth, else the subject CN of its verified TLS client
// certificate (conn.tlsPrincipal), else "anonymous" when anonymous access
// is allowed; without one a request gets 401. Each request is checked
// against the Authorizer (403 when refused) and transactions belong to the
// principal that began them (tx.go). With security off nothing is checked
// and transactions have no owner, as before.

// AnonymousPolicy is [security] allowAnonymous.
type AnonymousPolicy int

// Anonymous access policies.
const (
	// AnonymousDefault allows anonymous clients unless a users file is set.
	AnonymousDefault AnonymousPolicy = iota
	// AnonymousAllowed lets unauthenticated clients act as "anonymous".
	AnonymousAllowed
	// AnonymousRefused answers 401 to every request before a successful auth.
	AnonymousRefused
)

// SecurityOptions configure authentication and authorisation of the
// broker port. The zero value is security off (MetaQ's behaviour).
type SecurityOptions struct {
	// UsersFile holds SCRAM-SHA-256 credentials (`metaq users add`); ""
	// = no password authentication.
	UsersFile string
	// ACLFile holds the authorisation rules; "" = every principal may do
	// every operation except admin (security.DefaultAuthorizer).
	ACLFile string
	// Anonymous: whether clients that did not authenticate are served as
	// the principal "anonymous".
	Anonymous AnonymousPolicy
	// FailureDelay is the delay of the reply to the first failed
	// authentication from an address; it doubles with each further recent
	// failure up to MaxFailureDelay. Defaults 100ms and 3s; negative = no delay.
	FailureDelay, MaxFailureDelay time.Duration
}

func (o SecurityOptions) enabled() bool {
	return o.UsersFile != "" || o.ACLFile != "" || o.Anonymous == AnonymousRefused
}

// wireSecurity is the broker's loaded security state; nil when security is off.
type wireSecurity struct {
	opts      SecurityOptions
	anonymous bool
	failures  *failureTracker
	files     atomic.Pointer[securityFiles] // replaced whole by ReloadSecurity
}

// securityFiles is what the users and ACL files hold.
type securityFiles struct {
	authn *security.Authenticator // nil without a users file
	authz *security.Authorizer
}

func (ws *wireSecurity) authn() *security.Authenticator { return ws.files.Load().authn }
func (ws *wireSecurity) authz() *security.Authorizer    { return ws.files.Load().authz }

func loadWireSecurity(o SecurityOptions, log *slog.Logger) (*wireSecurity, error) {
	if !o.enabled() {
		return nil, nil
	}
	ws := &wireSecurity{opts: o, anonymous: o.Anonymous == AnonymousAllowed || o.Anonymous == AnonymousDefault && o.UsersFile == "",
		failures: newFailureTracker(o.FailureDelay, o.MaxFailureDelay)}
	f, err := loadSecurityFiles(o, log)
	if err != nil {
		return nil, err
	}
	ws.files.Store(f)
	if o.ACLFile == "" {
		log.Warn("security without an aclFile: every principal may put, get and commit offsets on every topic; " +
			"admin operations (stats config, replicate, other principals' transactions) are refused until an aclFile grants admin")
	}
	log.Info("wire security on", "usersFile", o.UsersFile, "aclFile", o.ACLFile, "allowAnonymous", ws.anonymous)
	return ws, nil
}

func loadSecurityFiles(o SecurityOptions, log *slog.Logger) (*securityFiles, error) {
	f := &securityFiles{authz: security.DefaultAuthorizer()}
	if o.UsersFile != "" {
		users, err := security.LoadUsers(o.UsersFile)
		if err != nil {
			return nil, fmt.Errorf("broker: [security] usersFile: %w", err)
		}
		if users.Len() == 0 {
			log.Warn("the users file has no users: nobody can authenticate with a password; add one with `metaq users add`", "usersFile", o.UsersFile)
		}
		if f.authn, err = security.NewAuthenticator(users); err != nil {
			return nil, err
		}
	}
	if o.ACLFile != "" {
		a, err := security.LoadACL(o.ACLFile)
		if err != nil {
			return nil, fmt.Errorf("broker: [security] aclFile: %w", err)
		}
		f.authz = a
	}
	return f, nil
}

// ReloadSecurity reads the users and ACL files again (SIGHUP). New
// authentications and every later request use them; connections keep
// the principal they have. On an error nothing changes and the error says
// what to fix. Without security it does nothing.
func (b *Broker) ReloadSecurity() error {
	ws := b.sec
	if ws == nil {
		return nil
	}
	f, err := loadSecurityFiles(ws.opts, b.log)
	if err != nil {
		return err
	}
	ws.files.Store(f)
	b.log.Info("security files reloaded", "usersFile", ws.opts.UsersFile, "aclFile", ws.opts.ACLFile)
	return nil
}

// IsAdmin reports whether principal holds the admin operation (true for
// everyone when security is off). For the admin port's mutual TLS.
func (b *Broker) IsAdmin(principal string) bool {
	return b.sec == nil || b.sec.authz().IsAdmin(principal)
}

// who is the connection's principal: "" when it has none yet (or security is off).
func (cn *conn) who() string {
	switch {
	case cn.b.sec == nil:
		return ""
	case cn.principal != "":
		return cn.principal
	case cn.tlsPrincipal != "":
		return cn.tlsPrincipal
	case cn.b.sec.anonymous:
		return security.AnonymousPrincipal
	}
	return ""
}

// isAdmin: the connection's principal may see and finish every transaction.
func (cn *conn) isAdmin() bool {
	return cn.b.sec == nil || cn.b.sec.authz().IsAdmin(cn.who())
}

// permit answers req itself (401 or 403) when the connection may not send
// it, and then returns false. Auth, version and quit are always allowed.
func (cn *conn) permit(req protocol.Request) bool {
	ws := cn.b.sec
	if ws == nil {
		return true
	}
	switch req.(type) {
	case *protocol.AuthRequest, *protocol.VersionRequest, *protocol.QuitRequest:
		return true
	}
	who := cn.who()
	if who == "" {
		cn.reply(protocol.CodeUnauthorized, req.Opaque(), "authentication required: send auth (SCRAM-SHA-256 or PLAIN) first; "+
			"this broker does not serve anonymous clients")
		return false
	}
	for _, c := range requiredFor(req, cn.replica != nil) {
		if ok, reason := ws.authz().Authorize(who, c.op, c.topic, c.group); !ok {
			cn.logRefusal(who, req, reason)
			cn.reply(protocol.CodeForbidden, req.Opaque(), reason)
			return false
		}
	}
	return true
}

// logRefusal logs an ACL refusal: at Info the first time on a connection,
// later ones at Debug (a client retrying in a loop must not flood the log).
func (cn *conn) logRefusal(who string, req protocol.Request, reason string) {
	level := slog.LevelDebug
	if !cn.refusalLogged {
		cn.refusalLogged, level = true, slog.LevelInfo
	}
	cn.b.log.Log(context.Background(), level, "request refused by the ACL", "remote", cn.remote, "principal", who,
		"verb", req.Verb().String(), "reason", reason)
}

type check struct {
	op           security.Operation
	topic, group string
}

// sensitiveStats are the stats items that need admin: the configuration
// (it may name files and hosts), the replication layout, and reset (it
// changes the counters other operators read).
var sensitiveStats = map[string]bool{"config": true, "replication": true, "reset": true}

// requiredFor is what a request needs (the ACL matrix of docs/SECURITY.md).
// A follower's gets on its replication stream were authorised by replicate.
func requiredFor(req protocol.Request, replicaStream bool) []check {
	switch r := req.(type) {
	case *protocol.PutRequest:
		if r.TxKey != "" {
			return []check{{op: security.OpPut, topic: r.Topic}, {op: security.OpTransaction}}
		}
		return []check{{op: security.OpPut, topic: r.Topic}}
	case *protocol.GetRequest:
		if replicaStream {
			return nil
		}
		return []check{{op: security.OpGet, topic: r.Topic, group: r.Group}}
	case *protocol.OffsetRequest:
		return []check{{op: security.OpOffset, topic: r.Topic, group: r.Group}}
	case *protocol.StatsRequest:
		if sensitiveStats[r.Item] {
			return []check{{op: security.OpAdmin}}
		}
		return []check{{op: security.OpStats}}
	case *protocol.TransactionRequest:
		return []check{{op: security.OpTransaction}}
	}
	return []check{{op: security.OpAdmin}} // replicate, sync, and any verb added later
}

// failureTracker counts recent failed authentications per client IP and
// says how long to delay the next failure's reply.
type failureTracker struct {
	base, max time.Duration
	window    time.Duration // failures older than this are forgotten

	mu   sync.Mutex // guards byIP
	byIP map[string]failures
}

type failures struct {
	n    int
	last time.Time
}

// maxTrackedIPs bounds the tracker; past it, entries outside the window are pruned.
const maxTrackedIPs = 10000

func newFailureTracker(base, maxDelay time.Duration) *failureTracker {
	if base == 0 {
		base = 100 * time.Millisecond
	}
	if maxDelay == 0 {
		maxDelay = 3 * time.Second
	}
	return &failureTracker{base: base, max: maxDelay, window: time.Minute, byIP: map[string]failures{}}
}

// fail records a failure from ip at now and returns the delay of its reply
// and the failures counted in the window.
func (t *failureTracker) fail(ip string, now time.Time) (time.Duration, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.byIP[ip]
	if now.Sub(f.last) > t.window {
		f.n = 0
	}
	f.n++
	f.last = now
	if len(t.byIP) >= maxTrackedIPs {
		for k, v := range t.byIP {
			if now.Sub(v.last) > t.window {
				delete(t.byIP, k)
			}
		}
	}
	t.byIP[ip] = f
	return failureDelay(t.base, t.max, f.n), f.n
}

// failureDelay is base·2^(n-1), capped at maxDelay; none when base < 0.
func failureDelay(base, maxDelay time.Duration, n int) time.Duration {
	if base < 0 || n <= 0 {
		return 0
	}
	d := base
	for i := 1; i < n && d < maxDelay; i++ {
		d *= 2
	}
	return min(d, max(maxDelay, base))
}

// mayUse reports whether the connection may see and finish t: always with
// security off or for the operator (cn nil); else when its principal began
// t or is an admin. A transaction without an owner (begun with security
// off, or journaled by an older version) is an admin's only.
func (cn *conn) mayUse(t *tx) bool {
	if cn == nil || cn.b.sec == nil {
		return true
	}
	who := cn.who()
	return who != "" && t.principal == who || cn.isAdmin()
}
