package config

import (
	"errors"
	"strings"

	"github.com/metaq-go/metaq/protocol"
)

// checkTopicSection validates the name of a [topic=...] section: a topic name
// (protocol.ValidTopic, the one rule of the module), or a pattern where '*'
// stands for any run of legal characters. A pattern is checked as the name it
// would be with each '*' read as one letter, so "*", ".*" and "orders.*" are
// legal and "a/*" or "." are not; the error quotes the pattern as written.
func checkTopicSection(name string) error {
	if !strings.Contains(name, "*") {
		return protocol.ValidTopic(name)
	}
	err := protocol.ValidTopic(strings.ReplaceAll(name, "*", "x"))
	var te *protocol.TopicNameError
	if errors.As(err, &te) {
		return &protocol.TopicNameError{Name: name, Reason: te.Reason + " (a section name may also use the wildcard '*')"}
	}
	return err
}

// pattern is a [topic=...] section whose name contains '*'.
type pattern struct {
	text     string
	literals int // characters other than '*'
	stars    int
}

func newPattern(text string) pattern {
	stars := strings.Count(text, "*")
	return pattern{text: text, literals: len(text) - stars, stars: stars}
}

// moreSpecific orders patterns by precedence: more literal characters first, then fewer
// '*', then lexicographically (so the order never depends on map or file order).
func (p pattern) moreSpecific(q pattern) bool {
	if p.literals != q.literals {
		return p.literals > q.literals
	}
	if p.stars != q.stars {
		return p.stars < q.stars
	}
	return p.text < q.text
}

// match reports whether name matches the glob, where '*' matches any run of characters,
// including none. Iterative with single backtracking: linear-ish, no recursion.
func (p pattern) match(name string) bool {
	pat := p.text
	pi, ni := 0, 0
	star, mark := -1, 0
	for ni < len(name) {
		switch {
		case pi < len(pat) && pat[pi] == '*':
			star, mark = pi, ni
			pi++
		case pi < len(pat) && pat[pi] == name[ni]:
			pi++
			ni++
		case star >= 0:
			pi = star + 1
			mark++
			ni = mark
		default:
			return false
		}
	}
	for pi < len(pat) && pat[pi] == '*' {
		pi++
	}
	return pi == len(pat)
}
