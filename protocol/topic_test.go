package protocol

import (
	"errors"
	"strings"
	"testing"
)

// TestValidTopic is the one table of the topic-name rule shared by the
// decoder, the broker configuration, the store, the coordinator and clients.
func TestValidTopic(t *testing.T) {
	cases := []struct {
		scenario string
		name     string
		reason   string // "" = legal; else a fragment of the reason
	}{
		{"MetaQ example topic", "meta-test", ""},
		{"underscore", "a_b", ""},
		{"dot inside", "a.b", ""},
		{"leading dots are a plain name", "..x", ""},
		{"trailing dots", "x..", ""},
		{"three dots are a plain name", "...", ""},
		{"one letter", "a", ""},
		{"mixed case and digits", "A.b_c-9", ""},
		{"trailing dash (dir orders--1)", "orders-", ""},
		{"longest", strings.Repeat("x", 255), ""},
		{"current directory", ".", "relative path component"},
		{"parent directory", "..", "relative path component"},
		{"empty", "", "empty"},
		{"too long", strings.Repeat("x", 256), "256 bytes long"},
		{"path separator", "a/b", `'/' at byte 1`},
		{"escape attempt", "../x", `'/' at byte 2`},
		{"backslash", `a\b`, `'\\' at byte 1`},
		{"NUL", "a\x00", "byte 0x00 at byte 1"},
		{"space", "a b", "a space at byte 1"},
		{"tab", "a\tb", "byte 0x09 at byte 1"},
		{"unicode", "tøpic", "byte 0xc3 at byte 1"},
		{"colon", "a:b", `':' at byte 1`},
		{"wildcard is config syntax, not a name", "a*", `'*' at byte 1`},
	}
	for _, c := range cases {
		t.Run(c.scenario, func(t *testing.T) {
			for _, err := range []error{ValidTopic(c.name), ValidTopic([]byte(c.name))} {
				if c.reason == "" {
					if err != nil {
						t.Fatalf("%q refused: %v", c.name, err)
					}
					continue
				}
				var te *TopicNameError
				if !errors.As(err, &te) {
					t.Fatalf("%q accepted (err %v)", c.name, err)
				}
				if !strings.Contains(te.Reason, c.reason) || !strings.Contains(err.Error(), TopicRule) {
					t.Fatalf("%q: error %q should say %q and the rule", c.name, err, c.reason)
				}
			}
		})
	}
}

func TestValidTopicDoesNotAllocate(t *testing.T) {
	b := []byte("meta-test")
	if n := testing.AllocsPerRun(100, func() { _ = ValidTopic(b); _ = ValidTopic("a.b") }); n != 0 {
		t.Fatalf("%v allocations checking a legal name", n)
	}
}
