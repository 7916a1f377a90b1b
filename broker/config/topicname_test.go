package config

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/metaq-go/metaq/protocol"
)

func TestTopicSectionNames(t *testing.T) {
	for _, ok := range []string{"meta-test_1.x", "*", ".*", "orders.*", "*s.*", "..x", strings.Repeat("a", 255)} {
		assert.NoError(t, checkTopicSection(ok), "%q", ok)
	}
	for _, bad := range []string{"", ".", "..", strings.Repeat("a", 256), "a/b", "a/*", "../x", "a b", "é", "a\x00"} {
		err := checkTopicSection(bad)
		var te *protocol.TopicNameError
		if assert.ErrorAs(t, err, &te, "%q", bad) {
			assert.Equal(t, bad, te.Name, "the error quotes the section as written")
		}
	}
	for _, tt := range []struct {
		pattern, name string
		match         bool
	}{
		{"*", "anything", true}, {"a*", "a", true}, {"a*c", "abbc", true}, {"a*c", "abcd", false},
		{"*.log", "x.log", true}, {"*.log", "x.logs", false}, {"a*b*c", "aXbYbZc", true},
	} {
		assert.Equal(t, tt.match, newPattern(tt.pattern).match(tt.name), "%s ~ %s", tt.pattern, tt.name)
	}
}
