package security

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		{"orders", "orders", true},
		{"orders", "orders2", false},
		{"orders*", "orders", true},
		{"orders*", "orders-eu", true},
		{"*", "", true},
		{"*-eu", "orders-eu", true},
		{"*-eu", "orders-us", false},
		{"o*r*s", "orders", true},
		{"o*r*s", "ors", true},
		{"o*x*s", "orders", false},
		{"a*a", "a", false},
	} {
		require.Equal(t, tc.want, Match(tc.pattern, tc.s), "%q ~ %q", tc.pattern, tc.s)
	}
}

const aclYAML = `
- {principal: alice, operations: [put, get, offset, transaction], topics: ["orders*"], groups: ["billing"]}
- {principal: "ops-*", operations: [stats]}
- {principal: root, operations: [admin]}
- principal: bob
  operations: [get]
  topics: ["*"]
  groups: ["*"]
`

func TestAuthorizerMatrix(t *testing.T) {
	a, err := ParseACL("acl.yaml", []byte(aclYAML))
	require.NoError(t, err)
	require.Len(t, a.Rules(), 4)
	require.Equal(t, 2, a.Rules()[0].Line)
	for _, tc := range []struct {
		principal    string
		op           Operation
		topic, group string
		want         bool
	}{
		{"alice", OpPut, "orders", "", true},
		{"alice", OpPut, "orders-eu", "", true},
		{"alice", OpPut, "payments", "", false},
		{"alice", OpGet, "orders", "billing", true},
		{"alice", OpGet, "orders", "other", false},
		{"alice", OpOffset, "orders", "billing", true},
		{"alice", OpTransaction, "", "", true},
		{"alice", OpStats, "", "", false},
		{"alice", OpAdmin, "", "", false},
		{"ops-1", OpStats, "", "", true},
		{"ops-1", OpGet, "orders", "billing", false},
		{"root", OpPut, "anything", "", true},
		{"root", OpAdmin, "", "", true},
		{"bob", OpGet, "x", "y", true},
		{"bob", OpPut, "x", "", false},
		{"anonymous", OpGet, "orders", "billing", false},
	} {
		ok, reason := a.Authorize(tc.principal, tc.op, tc.topic, tc.group)
		require.Equal(t, tc.want, ok, "%+v", tc)
		if !ok {
			require.Contains(t, reason, `principal "`+tc.principal+`"`)
			require.Contains(t, reason, string(tc.op))
			require.Contains(t, reason, "acl.yaml")
			if tc.topic != "" {
				require.Contains(t, reason, "topic "+tc.topic)
			}
		}
	}
	require.True(t, a.IsAdmin("root"))
	require.False(t, a.IsAdmin("alice"))
}

func TestDefaultAuthorizerAllowsAllButAdmin(t *testing.T) {
	a := DefaultAuthorizer()
	for _, op := range Operations {
		ok, reason := a.Authorize("anyone", op, "t", "g")
		require.Equal(t, op != OpAdmin, ok, op)
		if !ok {
			require.Contains(t, reason, "aclFile")
		}
	}
}

func TestMalformedACLFiles(t *testing.T) {
	for name, tc := range map[string]struct{ content, want string }{
		"not yaml":          {"- {principal: [\n", "not valid YAML"},
		"not a list":        {"principal: alice\n", "acl.yaml:1: want a list of rules"},
		"unknown op":        {"- {principal: a, operations: [write]}\n", `line 1 (rule 1): operation "write" is unknown`},
		"no principal":      {"- {operations: [get], topics: [x]}\n", "principal is missing"},
		"no operations":     {"- {principal: a}\n", "operations is empty"},
		"unknown key":       {"- {principal: a, operations: [get], topic: [x]}\n", `unknown key "topic"`},
		"rule not a map":    {"- alice\n", "want a mapping"},
		"empty pattern":     {"- {principal: a, operations: [get], topics: [\"\"]}\n", "empty topic or group pattern"},
		"second rule wrong": {"- {principal: a, operations: [get]}\n- {principal: b, operations: [put], groups: 3}\n", "line 2 (rule 2)"},
	} {
		_, err := ParseACL("acl.yaml", []byte(tc.content))
		require.ErrorIs(t, err, ErrBadACLFile, name)
		require.Contains(t, err.Error(), tc.want, name)
	}
	a, err := ParseACL("empty.yaml", nil)
	require.NoError(t, err)
	ok, _ := a.Authorize("root", OpAdmin, "", "")
	require.False(t, ok, "an empty ACL file allows nothing")
}
