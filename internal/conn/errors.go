package conn

import (
	"errors"
	"strconv"

	"github.com/metaq-go/metaq/protocol"
)

// Sentinel errors. Errors of this package wrap them; test with errors.Is.
var (
	// ErrClosed means the connection was closed by its owner (Close). A
	// request that was in flight may or may not have been processed.
	ErrClosed = errors.New("conn: connection closed")
	// ErrConnLost means the connection broke (I/O error, the broker closed it,
	// or it stopped answering). Requests in flight may or may not have been
	// processed; retrying them is safe for at-least-once delivery. Retriable.
	ErrConnLost = errors.New("conn: connection lost")
	// ErrDial means no connection could be made. Retriable.
	ErrDial = errors.New("conn: cannot connect")
	// ErrProtocol means the broker sent a reply that cannot be decoded; the
	// connection is closed. Not retriable on the same broker as is.
	ErrProtocol = errors.New("conn: malformed reply")
)

// ServerError is a reply with a code other than 200 (PROTOCOL.md §2). Msg is
// the reply body as the broker wrote it.
type ServerError struct {
	Code int32
	Msg  string
}

// Sentinels for errors.Is on a *ServerError by code (any message matches).
var (
	ErrBadRequest  = &ServerError{Code: protocol.CodeBadRequest}
	ErrForbidden   = &ServerError{Code: protocol.CodeForbidden}
	ErrNotFound    = &ServerError{Code: protocol.CodeNotFound}
	ErrInternal    = &ServerError{Code: protocol.CodeInternal}
	ErrUnavailable = &ServerError{Code: protocol.CodeUnavailable}
	ErrTimeout     = &ServerError{Code: protocol.CodeTimeout}
)

func (e *ServerError) Error() string {
	s := "conn: broker replied " + strconv.Itoa(int(e.Code)) + " " + protocol.CodeName(e.Code)
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	return s
}

// Retriable reports whether the same request may succeed later (503, 504).
func (e *ServerError) Retriable() bool { return protocol.Retriable(e.Code) }

// Is makes errors.Is(err, ErrUnavailable) (or any *ServerError without a
// message) match every *ServerError of the same code.
func (e *ServerError) Is(target error) bool {
	t, ok := target.(*ServerError)
	return ok && t.Msg == "" && t.Code == e.Code
}

// IsRetriable reports whether a request that failed with err may succeed when
// sent again: a lost or impossible connection, or a 503/504 reply.
func IsRetriable(err error) bool {
	var se *ServerError
	if errors.As(err, &se) {
		return se.Retriable()
	}
	return errors.Is(err, ErrConnLost) || errors.Is(err, ErrDial)
}

// wrapErr joins a sentinel and its cause so that both match errors.Is.
type wrapErr struct {
	kind  error
	cause error
}

func (e *wrapErr) Error() string {
	if e.cause == nil {
		return e.kind.Error()
	}
	return e.kind.Error() + ": " + e.cause.Error()
}

func (e *wrapErr) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

func wrap(kind, cause error) error { return &wrapErr{kind: kind, cause: cause} }
