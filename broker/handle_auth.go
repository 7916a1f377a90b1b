package broker

import (
	"encoding/base64"
	"errors"
	"time"

	"github.com/metaq-go/metaq/internal/security"
	"github.com/metaq-go/metaq/protocol"
)

// handleAuth answers `auth` (PROTOCOL.md "Authentication"). The exchange
// runs off the event loop (PLAIN costs a PBKDF2 derivation, and a failure's
// reply is delayed); meanwhile the connection decodes nothing more
// (authBusy), so requests pipelined after auth are judged with its outcome.
func (cn *conn) handleAuth(r *protocol.AuthRequest) {
	ws := cn.b.sec
	var authn *security.Authenticator
	if ws != nil {
		authn = ws.authn()
	}
	switch {
	case authn == nil:
		cn.reply(protocol.CodeUnauthorized, r.OpaqueID, "password authentication is not configured on this broker ([security] usersFile is not set)")
		return
	case r.Mechanism != protocol.MechPlain && r.Mechanism != protocol.MechSCRAMSHA256:
		cn.reply(protocol.CodeUnauthorized, r.OpaqueID, "unsupported SASL mechanism "+r.Mechanism+": use SCRAM-SHA-256 or PLAIN")
		return
	}
	if !cn.b.admit() {
		cn.reply(protocol.CodeUnavailable, r.OpaqueID, "broker is shutting down; use another broker")
		return
	}
	mech, data, opaque := r.Mechanism, r.Data, r.OpaqueID
	if mech == protocol.MechPlain || isSCRAMClientFirst(data) {
		cn.scram = nil // a new exchange replaces an unfinished one
	}
	if mech == protocol.MechSCRAMSHA256 && cn.scram == nil {
		cn.scram = authn.NewSCRAM()
	}
	conv := cn.scram
	cn.authBusy.Store(true)
	cn.inflight.Add(1)
	go func() {
		defer cn.b.inflight.Done()
		code, body, user, err := authStep(authn, mech, conv, data)
		if err != nil {
			cn.authFailed(ws, mech, err)
		}
		cn.finishAuth(code, opaque, body, user, err)
	}()
}

// isSCRAMClientFirst reports whether a SCRAM message starts an exchange
// (a GS2 header: n, y or p=...).
func isSCRAMClientFirst(msg []byte) bool {
	return len(msg) >= 2 && (msg[0] == 'n' || msg[0] == 'y') && msg[1] == ',' || len(msg) >= 2 && msg[0] == 'p' && msg[1] == '='
}

// authStep runs one client message of the exchange (off the loop).
func authStep(authn *security.Authenticator, mech string, conv *security.SCRAMConversation, data []byte) (code int32, body []byte, user string, err error) {
	if mech == protocol.MechPlain {
		user, err = authn.Plain(data)
		return protocol.CodeOK, nil, user, err
	}
	reply, done, user, err := conv.Step(data)
	if err != nil {
		return 0, nil, "", err
	}
	body = base64.StdEncoding.AppendEncode(nil, reply)
	if !done {
		return protocol.CodeContinue, body, "", nil
	}
	return protocol.CodeOK, body, user, nil
}

// authFailed logs a failed exchange (user and address, never the
// password) and holds its reply for the address's failure delay (until the
// broker stops).
func (cn *conn) authFailed(ws *wireSecurity, mech string, err error) {
	var ae *security.AuthError
	user, cause := "", err.Error()
	if errors.As(err, &ae) {
		user, cause = ae.User, ae.Cause
	}
	delay, recent := ws.failures.fail(cn.ip, time.Now())
	cn.b.log.Warn("authentication failed", "user", user, "remote", cn.remote, "mechanism", mech, "cause", cause,
		"recent_failures_from_ip", recent, "reply_delay", delay)
	if delay <= 0 {
		return
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-cn.b.stopCh:
	}
}

// finishAuth applies the outcome (off the loop), replies, and lets the
// connection decode again. A failure leaves the connection unauthenticated.
func (cn *conn) finishAuth(code, opaque int32, body []byte, user string, err error) {
	switch {
	case err != nil:
		cn.scram, cn.principal = nil, ""
		code, body = protocol.CodeUnauthorized, []byte(security.ErrAuthFailed.Error())
	case code == protocol.CodeOK:
		cn.scram, cn.principal = nil, user
		cn.b.log.Debug("authenticated", "user", user, "remote", cn.remote)
	}
	cn.replyAsync(protocol.AppendResult(nil, code, opaque, body))
	cn.inflight.Add(-1)
	cn.authBusy.Store(false) // publishes principal and scram to the loop
	cn.wake()
}
