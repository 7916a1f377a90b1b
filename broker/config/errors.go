package config

import (
	"errors"
	"fmt"
	"strings"
)

// ErrUnknownKey reports a key, section or environment variable that is not part of the
// configuration schema (a typo, usually; the error names the nearest valid spelling).
var ErrUnknownKey = errors.New("config: unknown key")

// ErrBadValue reports a value that cannot be parsed or is out of range, or malformed
// file syntax.
var ErrBadValue = errors.New("config: bad value")

// ErrMissing reports a missing configuration file or a required key without a value.
var ErrMissing = errors.New("config: missing")

// Error is the error type returned by [Load] and [Parse]. It wraps exactly one of
// [ErrUnknownKey], [ErrBadValue] or [ErrMissing] (test with errors.Is) and, for a missing
// file, the underlying *fs.PathError too.
type Error struct {
	Kind    error  // one of the sentinels above
	File    string // base name of the file, when the problem is in the file
	Line    int    // 1-based line for INI syntax errors, else 0
	Section string // "system", "zookeeper", "topic=<name>", or "" (file level)
	Key     string // canonical key name (as written for an unknown key)
	Msg     string // what is wrong and what is expected
	Cause   error  // underlying error, if any
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("config: ")
	switch {
	case e.Kind == ErrUnknownKey && e.File != "":
		// config: server.ini [system]: unknown key "severPort" (did you mean "serverPort"?)
		b.WriteString(e.File)
		if e.Section != "" {
			fmt.Fprintf(&b, " [%s]", e.Section)
		}
		b.WriteString(": ")
	case e.Line > 0:
		fmt.Fprintf(&b, "%s:%d: ", e.File, e.Line)
	case e.Section != "" && e.Key != "":
		// config: [system] brokerId: "abc" is not an integer 0..1023
		fmt.Fprintf(&b, "[%s] %s: ", e.Section, e.Key)
	case e.Section != "":
		fmt.Fprintf(&b, "[%s]: ", e.Section)
	case e.File != "":
		b.WriteString(e.File + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the sentinel and the cause, so errors.Is works for both.
func (e *Error) Unwrap() []error {
	if e.Cause != nil {
		return []error{e.Kind, e.Cause}
	}
	return []error{e.Kind}
}

func badValue(section, key, format string, args ...any) *Error {
	return &Error{Kind: ErrBadValue, Section: section, Key: key, Msg: fmt.Sprintf(format, args...)}
}
