package producer

import (
	"context"
	"errors"

	"github.com/metaq-go/metaq/internal/conn"
)

// Sentinel errors. Errors returned by the producer wrap them (and the cause);
// test with errors.Is, and ask IsRetriable whether sending again may work.
var (
	// ErrClosed: the producer was closed before the message was acknowledged.
	ErrClosed = errors.New("producer: closed")
	// ErrNoPartitions: no partition of the topic is available (no broker
	// registered for it, or every broker unreachable). Retriable.
	ErrNoPartitions = errors.New("producer: no partition available for the topic")
	// ErrPartitionUnavailable: an ordered (by-key) message's partition is on a
	// broker that is gone or unreachable. The message is never moved to
	// another partition; it fails so the caller can decide. Retriable.
	ErrPartitionUnavailable = errors.New("producer: the message's partition is unavailable")
	// ErrMessageTooLarge: the put data exceeds the maximum message size.
	ErrMessageTooLarge = errors.New("producer: message too large")
	// ErrInvalidMessage: bad topic name or a key missing for ByKey.
	ErrInvalidMessage = errors.New("producer: invalid message")
	// ErrConnLost: the connection to the broker broke with the message in
	// flight; it may or may not have been stored. Retriable.
	ErrConnLost = conn.ErrConnLost
	// ErrBrokerUnreachable: no connection could be made. Retriable.
	ErrBrokerUnreachable = conn.ErrDial
	// ErrAuth: a broker refused the credentials of WithSASL (the error
	// carries its reason), or could not prove it knows them. Not retriable.
	ErrAuth = conn.ErrAuth
)

// ServerError is a broker's refusal: Code is the reply code (PROTOCOL.md §2),
// Msg its reason. 503 and 504 are retriable.
type ServerError = conn.ServerError

// Sentinels matching a ServerError by code with errors.Is.
var (
	ErrBrokerBusy    = conn.ErrUnavailable // 503
	ErrBrokerTimeout = conn.ErrTimeout     // 504
	ErrForbidden     = conn.ErrForbidden   // 403: partition closed by an operator
	ErrBrokerRefused = conn.ErrInternal    // 500: e.g. topic not accepted
)

// IsRetriable reports whether sending the message again may succeed.
// Context errors are not retriable (the caller's deadline is over).
func IsRetriable(err error) bool {
	switch {
	case err == nil, errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, ErrClosed), errors.Is(err, ErrMessageTooLarge), errors.Is(err, ErrInvalidMessage):
		return false
	case errors.Is(err, ErrNoPartitions), errors.Is(err, ErrPartitionUnavailable):
		return true
	}
	return conn.IsRetriable(err)
}

// sendError wraps a cause with a sentinel (both match errors.Is) and says
// what it was about.
type sendError struct {
	msg   string
	kinds []error
}

func (e *sendError) Error() string   { return e.msg }
func (e *sendError) Unwrap() []error { return e.kinds }

func newErr(msg string, kinds ...error) error {
	return &sendError{msg: msg, kinds: kinds}
}
