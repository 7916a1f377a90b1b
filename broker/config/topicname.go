package config

import (
	"fmt"
	"strings"
)

// MaxTopicLength is the longest legal topic name (PROTOCOL §3).
const MaxTopicLength = 255

// ValidTopicName reports whether name is a legal topic: 1–255 characters of ASCII
// letters, digits, '.', '_' and '-'. Such a name cannot escape the data directory.
func ValidTopicName(name string) bool {
	return checkTopicName(name, false) == nil
}

// checkTopicName validates a topic name, or a [topic=...] pattern when wildcard is set
// ('*' allowed too).
func checkTopicName(name string, wildcard bool) error {
	if name == "" || len(name) > MaxTopicLength {
		return fmt.Errorf("topic name must be 1..%d characters, got %d", MaxTopicLength, len(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '.', c == '_', c == '-', c == '*' && wildcard:
		default:
			return fmt.Errorf("topic name %q has %q at %d; allowed are letters, digits, '.', '_', '-'%s",
				name, c, i, map[bool]string{true: " and the wildcard '*'"}[wildcard])
		}
	}
	return nil
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
