package broker

import (
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/metaq-go/metaq/broker/store"
	"github.com/metaq-go/metaq/protocol"
)

// TestReadErrorReply maps store read errors to the replies of PROTOCOL.md §5.
func TestReadErrorReply(t *testing.T) {
	cases := []struct {
		name string
		err  error
		code int32
		body string // "" = any
	}{
		{"offset inside a message moves to the next one",
			fmt.Errorf("wrapped: %w", &store.MisalignedOffsetError{Offset: 30, Next: 85}), protocol.CodeMoved, "85"},
		{"before the start moves to the earliest",
			&store.OffsetTooSmallError{Offset: 3, Earliest: 100}, protocol.CodeMoved, "100"},
		{"caught up", store.ErrCaughtUp, protocol.CodeNotFound, ""},
		{"failed partition is unavailable", fmt.Errorf("%w: read fault", store.ErrFailed), protocol.CodeUnavailable, ""},
		{"corruption is an internal error", fmt.Errorf("%w: checksum mismatch", store.ErrCorrupt), protocol.CodeInternal, ""},
		{"anything else", errors.New("boom"), protocol.CodeInternal, "read failed: boom"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := readErrorReply(c.err, 30, false)
			if code != c.code || (c.body != "" && body != c.body) {
				t.Fatalf("readErrorReply = %d %q, want %d %q", code, body, c.code, c.body)
			}
		})
	}
	if code, body := readErrorReply(&store.OffsetTooLargeError{Offset: math.MaxInt64, End: 76}, math.MaxInt64, false); code != protocol.CodeMoved || body != "76" {
		t.Fatalf("MaxInt64 → %d %q", code, body)
	}
}
