package conn

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/xdg-go/scram"

	"github.com/metaq-go/metaq/protocol"
)

// ErrAuth means the broker refused the connection's credentials, or the
// authentication exchange failed (the broker could not prove it knows the
// SCRAM credentials, or it does not speak `auth`). The error carries the
// broker's reason. Not retriable: fix the credentials.
var ErrAuth = errors.New("conn: authentication failed")

// Auth holds the SASL credentials a connection authenticates with
// (PROTOCOL.md "Authentication") right after it connects, before any other
// request. The password never appears in an error or a log line.
type Auth struct {
	// Mechanism is protocol.MechSCRAMSHA256 (the default, for "") or
	// protocol.MechPlain. SCRAM-SHA-256 never sends the password and proves
	// the broker knows the user's credentials; PLAIN sends the password, so
	// use it only over TLS.
	Mechanism string
	User      string
	Password  string
}

// Validate checks the credentials: a user, and a supported mechanism.
func (a Auth) Validate() error {
	if a.User == "" {
		return errors.New("conn: authentication: empty user name")
	}
	switch a.mechanism() {
	case protocol.MechSCRAMSHA256, protocol.MechPlain:
		return nil
	}
	return fmt.Errorf("conn: authentication: unknown SASL mechanism %q: use %s (default) or %s",
		a.Mechanism, protocol.MechSCRAMSHA256, protocol.MechPlain)
}

// mechanism is Mechanism in upper case, SCRAM-SHA-256 when empty.
func (a Auth) mechanism() string {
	if a.Mechanism == "" {
		return protocol.MechSCRAMSHA256
	}
	return strings.ToUpper(a.Mechanism)
}

// String shows the user and mechanism, never the password (%v, %+v, %s).
func (a Auth) String() string { return a.User + " (" + a.mechanism() + ")" }

// GoString keeps the password out of %#v.
func (a Auth) GoString() string { return "conn.Auth{" + a.String() + "}" }

// handshake runs, within ctx, the TLS handshake (when o.TLS is set) and the
// authentication exchange (when o.Auth is set) on a fresh connection. It
// returns the connection to use and the bytes read past the last auth reply.
func handshake(ctx context.Context, nc net.Conn, addr string, o Options) (net.Conn, []byte, error) {
	if o.TLS != nil {
		cfg := o.TLS.Clone()
		if cfg.ServerName == "" {
			if host, _, err := net.SplitHostPort(addr); err == nil {
				cfg.ServerName = host
			}
		}
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nc, nil, wrap(ErrDial, fmt.Errorf("TLS handshake with %s: %w (check the broker's TLS port, the CA that signed its certificate, and the client certificate)", addr, err))
		}
		nc = tc
	}
	if o.Auth == nil {
		return nc, nil, nil
	}
	if err := o.Auth.Validate(); err != nil {
		return nc, nil, err
	}
	x := &exchange{nc: nc, addr: addr, auth: o.Auth,
		dec: protocol.NewReplyDecoder(protocol.Config{MaxBodySize: o.MaxReplyBody})}
	err := x.run(ctx)
	return nc, x.buf[x.start:x.end], err
}

// exchange is one authentication exchange on a connection whose loops have
// not started: requests are written and replies read synchronously.
type exchange struct {
	nc         net.Conn
	addr       string
	auth       *Auth
	dec        *protocol.ReplyDecoder
	buf        []byte
	start, end int
	opaque     int32
}

// run authenticates, bounded by ctx (its deadline and its cancellation).
func (x *exchange) run(ctx context.Context) error {
	if dl, ok := ctx.Deadline(); ok {
		_ = x.nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = x.nc.SetDeadline(time.Unix(1, 0)) })
	var err error
	if x.auth.mechanism() == protocol.MechPlain {
		err = x.plain()
	} else {
		err = x.scram()
	}
	if !stop() && err == nil {
		err = ctx.Err() // the deadline was cut short: the connection is unusable
	}
	if err != nil {
		if (ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded)) && !errors.Is(err, ErrAuth) {
			cause := ctx.Err()
			if cause == nil { // the connection's deadline (ctx's) came first
				cause = context.DeadlineExceeded
			}
			err = wrap(ErrDial, fmt.Errorf("authenticating to %s: no answer: %w", x.addr, cause))
		}
		return err
	}
	return x.nc.SetDeadline(time.Time{})
}

func (x *exchange) plain() error {
	msg := make([]byte, 0, 2+len(x.auth.User)+len(x.auth.Password))
	msg = append(append(append(append(msg, 0), x.auth.User...), 0), x.auth.Password...)
	code, body, err := x.roundTrip(protocol.MechPlain, msg)
	clear(msg)
	if err != nil {
		return err
	}
	if code != protocol.CodeOK {
		return x.refused(code, body)
	}
	return nil
}

func (x *exchange) scram() error {
	client, err := scram.SHA256.NewClient(x.auth.User, x.auth.Password, "")
	if err != nil {
		return fmt.Errorf("%w: SCRAM-SHA-256 cannot use the credentials of user %q: %v", ErrAuth, x.auth.User, err)
	}
	conv := client.NewConversation()
	first, err := conv.Step("")
	if err != nil {
		return fmt.Errorf("%w: SCRAM-SHA-256: %v", ErrAuth, err)
	}
	code, body, err := x.roundTrip(protocol.MechSCRAMSHA256, []byte(first))
	if err != nil {
		return err
	}
	if code != protocol.CodeContinue {
		return x.refused(code, body)
	}
	serverFirst, err := x.decode(body, "server-first")
	if err != nil {
		return err
	}
	final, err := conv.Step(serverFirst)
	if err != nil {
		return fmt.Errorf("%w: broker %s: SCRAM-SHA-256 server-first message: %v", ErrAuth, x.addr, err)
	}
	if code, body, err = x.roundTrip(protocol.MechSCRAMSHA256, []byte(final)); err != nil {
		return err
	}
	if code != protocol.CodeOK {
		return x.refused(code, body)
	}
	serverFinal, err := x.decode(body, "server-final")
	if err != nil {
		return err
	}
	if _, err := conv.Step(serverFinal); err != nil || !conv.Valid() {
		return fmt.Errorf("%w: broker %s accepted user %q but could not prove it knows the user's SCRAM credentials (%v): it may not be the broker you meant; check the address and the broker's users file",
			ErrAuth, x.addr, x.auth.User, err)
	}
	return nil
}

// decode decodes a base64 SCRAM message from the broker.
func (x *exchange) decode(body []byte, what string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(string(body))
	if err != nil {
		return "", fmt.Errorf("%w: broker %s: SCRAM-SHA-256 %s message is not base64: %v", ErrAuth, x.addr, what, err)
	}
	return string(b), nil
}

// refused is the error of a reply other than the expected one.
func (x *exchange) refused(code int32, body []byte) error {
	if code == protocol.CodeUnauthorized {
		return fmt.Errorf("%w: broker %s refused user %q (%s): %s", ErrAuth, x.addr, x.auth.User, x.auth.mechanism(), body)
	}
	return fmt.Errorf("%w: broker %s answered %s authentication of user %q with %w (does the broker support authentication?)",
		ErrAuth, x.addr, x.auth.mechanism(), x.auth.User, &ServerError{Code: code, Msg: string(body)})
}

// roundTrip sends one auth request and reads its reply; the body is a copy.
func (x *exchange) roundTrip(mech string, data []byte) (int32, []byte, error) {
	x.opaque++
	req := protocol.AppendAuth(nil, mech, data, x.opaque)
	_, err := x.nc.Write(req)
	clear(req)
	if err != nil {
		return 0, nil, wrap(ErrDial, fmt.Errorf("authenticating to %s: %w", x.addr, err))
	}
	if x.buf == nil {
		x.buf = make([]byte, 4096)
	}
	for {
		rep, used, err := x.dec.Decode(x.buf[x.start:x.end])
		if err != nil {
			return 0, nil, wrap(ErrProtocol, err)
		}
		if used > 0 {
			x.start += used
			if rep.Opaque != x.opaque { // e.g. a TLS port's refusal of a plaintext client (opaque 0)
				return 0, nil, wrap(ErrProtocol, fmt.Errorf("broker %s answered auth request %d with opaque %d: %w",
					x.addr, x.opaque, rep.Opaque, &ServerError{Code: rep.Code, Msg: string(rep.Body)}))
			}
			return rep.Code, append([]byte(nil), rep.Body...), nil
		}
		if x.end == len(x.buf) {
			x.buf, x.start, x.end = makeRoom(x.buf, x.start, x.end, x.dec.Pending())
		}
		n, err := x.nc.Read(x.buf[x.end:])
		x.end += n
		if n == 0 && err != nil {
			return 0, nil, wrap(ErrDial, fmt.Errorf("authenticating to %s: the broker closed the connection or did not answer: %w (a broker's TLS port closes plaintext connections: does it need TLS?)", x.addr, err))
		}
	}
}
