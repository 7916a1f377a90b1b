package config

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// iniCodec is the viper codec for MetaQ's server.ini dialect. viper v1.21 ships no INI
// codec of its own, so Load registers this one in a per-call viper.CodecRegistry.
//
// The dialect is what ini4j (used by MetaQ) accepts in practice:
//   - whole-line comments starting with ';' or '#'; no inline comments, so a value
//     keeps everything after the separator ("deleteWhen=0 0 6,18 * * ?");
//   - "[section]" headers, the name trimmed; a comment may follow the ']';
//   - "key=value" or "key: value", split at the first '=' or ':', both sides trimmed;
//   - an empty value means "not set" (MetaQ's samples write "hostName=");
//   - a repeated key: the last one wins (as in ini4j) and a warning is recorded;
//   - no line continuations and no escape sequences (values are taken literally).
//
// Everything else is an error with a line number: text outside any section, a line that
// is neither a comment, a header nor key=value, an empty key, a repeated section.
type iniCodec struct {
	file     string
	warnings []string
}

// Decode implements viper.Decoder: it fills v with section name → map of key → string.
func (c *iniCodec) Decode(b []byte, v map[string]any) error {
	sections, warnings, err := parseINI(c.file, b)
	c.warnings = append(c.warnings, warnings...)
	if err != nil {
		return err
	}
	for name, kv := range sections {
		m := make(map[string]any, len(kv))
		for k, val := range kv {
			m[k] = val
		}
		v[name] = m
	}
	return nil
}

// Encode implements viper.Encoder; writing INI is not supported.
func (c *iniCodec) Encode(map[string]any) ([]byte, error) {
	return nil, errors.New("config: writing INI is not supported")
}

type iniParser struct {
	file     string
	sections map[string]map[string]string
	seenAt   map[string]int            // section → header line
	keyAt    map[string]map[string]int // section → lower(key) → line
	keyName  map[string]map[string]string
	current  string
	warnings []string
}

// parseINI reads MetaQ server.ini text into section → key → value, keeping the
// spelling of section names and keys. It never panics on any input.
func parseINI(file string, data []byte) (map[string]map[string]string, []string, error) {
	p := &iniParser{
		file:     file,
		sections: map[string]map[string]string{},
		seenAt:   map[string]int{},
		keyAt:    map[string]map[string]int{},
		keyName:  map[string]map[string]string{},
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // UTF-8 BOM
	for i, line := range strings.Split(string(data), "\n") {
		if err := p.line(i+1, strings.TrimSpace(strings.TrimSuffix(line, "\r"))); err != nil {
			return nil, p.warnings, err
		}
	}
	return p.sections, p.warnings, nil
}

func (p *iniParser) syntax(line int, format string, args ...any) error {
	return &Error{Kind: ErrBadValue, File: p.file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

func (p *iniParser) line(n int, s string) error {
	switch {
	case s == "" || s[0] == ';' || s[0] == '#':
		return nil
	case s[0] == '[':
		return p.header(n, s)
	}
	sep := strings.IndexAny(s, "=:")
	if sep < 0 {
		return p.syntax(n, "expected key=value, a [section] header or a ; comment, got %q", s)
	}
	key, val := strings.TrimSpace(s[:sep]), strings.TrimSpace(s[sep+1:])
	if key == "" {
		return p.syntax(n, "empty key before %q", s[sep:sep+1])
	}
	if p.current == "" {
		return p.syntax(n, "key %q outside any section (start with [system])", key)
	}
	lk := strings.ToLower(key)
	if prev, ok := p.keyAt[p.current][lk]; ok {
		p.warnings = append(p.warnings, fmt.Sprintf("%s:%d: [%s] %s repeats line %d; the last value wins",
			p.file, n, p.current, key, prev))
		delete(p.sections[p.current], p.keyName[p.current][lk])
	}
	p.keyAt[p.current][lk] = n
	p.keyName[p.current][lk] = key
	p.sections[p.current][key] = val
	return nil
}

func (p *iniParser) header(n int, s string) error {
	end := strings.IndexByte(s, ']')
	if end < 0 {
		return p.syntax(n, "section header %q has no closing ']'", s)
	}
	if rest := strings.TrimSpace(s[end+1:]); rest != "" && rest[0] != ';' && rest[0] != '#' {
		return p.syntax(n, "unexpected text %q after section header", rest)
	}
	name := strings.TrimSpace(s[1:end])
	if name == "" {
		return p.syntax(n, "empty section name")
	}
	if prev, ok := p.seenAt[name]; ok {
		return p.syntax(n, "section [%s] repeats line %d; merge the two", name, prev)
	}
	p.seenAt[name] = n
	p.sections[name] = map[string]string{}
	p.keyAt[name] = map[string]int{}
	p.keyName[name] = map[string]string{}
	p.current = name
	return nil
}
