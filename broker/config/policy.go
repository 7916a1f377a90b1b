package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// PolicyAction is what retention does with an expired segment.
type PolicyAction string

const (
	// PolicyDelete removes expired segments.
	PolicyDelete PolicyAction = "delete"
	// PolicyArchive renames expired segments to "<name>.arc", or zips them when
	// DeletePolicy.Compress is set.
	PolicyArchive PolicyAction = "archive"
)

// DeletePolicy is a parsed MetaQ deletePolicy: "delete,<N>[s|m|h]" or
// "archive,<N>[s|m|h][,true|false]". N without a unit is hours. Only closed segments
// older than MaxAge are affected.
type DeletePolicy struct {
	Action   PolicyAction
	MaxAge   time.Duration
	Compress bool   // archive only: zip instead of renaming
	Text     string // the setting as written, e.g. "delete,168"
}

// String returns the policy as written in the configuration.
func (p DeletePolicy) String() string { return p.Text }

// ParseDeletePolicy parses a MetaQ deletePolicy value.
func ParseDeletePolicy(s string) (DeletePolicy, error) {
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	p := DeletePolicy{Action: PolicyAction(strings.ToLower(parts[0])), Text: strings.TrimSpace(s)}
	switch {
	case p.Action == PolicyDelete && len(parts) == 2:
	case p.Action == PolicyArchive && (len(parts) == 2 || len(parts) == 3):
		if len(parts) == 3 {
			c, err := parseBool(parts[2])
			if err != nil {
				return DeletePolicy{}, fmt.Errorf("archive compress flag %q is not true or false", parts[2])
			}
			p.Compress = c
		}
	default:
		return DeletePolicy{}, fmt.Errorf("expected delete,<N>[s|m|h] or archive,<N>[s|m|h][,true]")
	}
	age, err := parseAge(parts[1])
	if err != nil {
		return DeletePolicy{}, err
	}
	p.MaxAge = age
	return p, nil
}

// parseAge parses "<N>[s|m|h]"; no unit means hours (MetaQ). N must be positive.
func parseAge(s string) (time.Duration, error) {
	unit := time.Hour
	num := s
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 's', 'S':
			unit, num = time.Second, s[:n-1]
		case 'm', 'M':
			unit, num = time.Minute, s[:n-1]
		case 'h', 'H':
			num = s[:n-1]
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > int64(1<<62)/int64(unit) {
		return 0, fmt.Errorf("age %q is not a positive number with an optional unit s, m or h (hours when omitted)", s)
	}
	return time.Duration(n) * unit, nil
}
