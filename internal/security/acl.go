package security

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Operation is what an ACL rule grants.
type Operation string

// Operations (docs/SECURITY.md has the matrix of wire verbs).
const (
	OpPut         Operation = "put"         // put to a topic
	OpGet         Operation = "get"         // get from a topic as a group
	OpOffset      Operation = "offset"      // the offset verb: look up a group's offset in a topic
	OpTransaction Operation = "transaction" // the transaction verb (puts in it also need put)
	OpStats       Operation = "stats"       // non-sensitive stats items
	OpAdmin       Operation = "admin"       // everything, incl. stats config, replicate, every principal's transactions
)

// Operations lists every operation.
var Operations = []Operation{OpPut, OpGet, OpOffset, OpTransaction, OpStats, OpAdmin}

// AnonymousPrincipal is the principal of clients that did not authenticate
// when anonymous access is allowed.
const AnonymousPrincipal = "anonymous"

// ErrBadACLFile: the ACL file cannot be used; the message names the file,
// the rule and what to fix.
var ErrBadACLFile = errors.New("security: bad ACL file")

// Rule is one entry of the ACL file.
type Rule struct {
	Principal  string      `yaml:"principal"`
	Operations []Operation `yaml:"operations"`
	Topics     []string    `yaml:"topics"`
	Groups     []string    `yaml:"groups"`
	Line       int         `yaml:"-"` // where it starts in its file (0 when built in code)
}

var ruleKeys = []string{"principal", "operations", "topics", "groups"}

func (r Rule) validate() error {
	if r.Principal == "" {
		return errors.New("principal is missing (a user name, a TLS certificate CN, \"anonymous\", or a pattern with *)")
	}
	if len(r.Operations) == 0 {
		return fmt.Errorf("operations is empty (valid: %s)", joinOps(Operations))
	}
	for _, op := range r.Operations {
		if !slices.Contains(Operations, op) {
			return fmt.Errorf("operation %q is unknown (valid: %s)", op, joinOps(Operations))
		}
	}
	for _, list := range [][]string{r.Topics, r.Groups} {
		if slices.Contains(list, "") {
			return errors.New(`an empty topic or group pattern matches nothing; use "*" for all`)
		}
	}
	return nil
}

func joinOps(ops []Operation) string {
	s := make([]string, len(ops))
	for i, op := range ops {
		s[i] = string(op)
	}
	return strings.Join(s, ", ")
}

// Authorizer answers whether a principal may perform an operation. It is
// immutable and safe for concurrent use.
type Authorizer struct {
	source string // the ACL file, "" for DefaultAuthorizer
	rules  []Rule
}

// DefaultAuthorizer is the policy without an ACL file: every principal
// may do every operation on every topic and group, except admin.
func DefaultAuthorizer() *Authorizer { return &Authorizer{} }

// NewAuthorizer validates rules; source names them in errors and reasons.
func NewAuthorizer(source string, rules []Rule) (*Authorizer, error) {
	for i, r := range rules {
		if err := r.validate(); err != nil {
			return nil, fmt.Errorf("%w %s: %s: %v", ErrBadACLFile, source, ruleName(i, r), err)
		}
	}
	if source == "" {
		source = "the ACL"
	}
	return &Authorizer{source: source, rules: slices.Clone(rules)}, nil
}

func ruleName(i int, r Rule) string {
	if r.Line > 0 {
		return fmt.Sprintf("line %d (rule %d)", r.Line, i+1)
	}
	return fmt.Sprintf("rule %d", i+1)
}

// LoadACL reads an ACL file.
func LoadACL(path string) (*Authorizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %v (write the rules there, or remove aclFile from [security])", ErrBadACLFile, path, err)
	}
	return ParseACL(path, data)
}

// ParseACL parses the content of an ACL file; source names it in errors.
// An empty file is a valid ACL that allows nothing.
func ParseACL(source string, data []byte) (*Authorizer, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%w %s: not valid YAML: %v", ErrBadACLFile, source, err)
	}
	var rules []Rule
	if len(root.Content) > 0 {
		list := root.Content[0]
		if list.Kind != yaml.SequenceNode {
			return nil, fmt.Errorf("%w %s:%d: want a list of rules such as `- {principal: alice, operations: [put], topics: [\"orders*\"]}`", ErrBadACLFile, source, list.Line)
		}
		for i, n := range list.Content {
			r, err := parseRule(n)
			if err != nil {
				return nil, fmt.Errorf("%w %s: line %d (rule %d): %v", ErrBadACLFile, source, n.Line, i+1, err)
			}
			rules = append(rules, r)
		}
	}
	return NewAuthorizer(source, rules)
}

func parseRule(n *yaml.Node) (Rule, error) {
	if n.Kind != yaml.MappingNode {
		return Rule{}, fmt.Errorf("want a mapping with %s", strings.Join(ruleKeys, ", "))
	}
	for j := 0; j+1 < len(n.Content); j += 2 {
		if !slices.Contains(ruleKeys, n.Content[j].Value) {
			return Rule{}, fmt.Errorf("unknown key %q (valid: %s)", n.Content[j].Value, strings.Join(ruleKeys, ", "))
		}
	}
	var r Rule
	if err := n.Decode(&r); err != nil {
		return Rule{}, err
	}
	r.Line = n.Line
	return r, nil
}

// Rules returns the rules (nil for DefaultAuthorizer).
func (a *Authorizer) Rules() []Rule { return slices.Clone(a.rules) }

// Authorize reports whether principal may perform op on topic as group
// ("" when the request has none). When it may not, reason says who was
// refused what, for the client and the log.
func (a *Authorizer) Authorize(principal string, op Operation, topic, group string) (ok bool, reason string) {
	if a.source == "" {
		if op != OpAdmin {
			return true, ""
		}
		return false, fmt.Sprintf("principal %q may not perform %s: admin needs an aclFile rule granting it", principal, describe(op, topic, group))
	}
	for _, r := range a.rules {
		if r.allows(principal, op, topic, group) {
			return true, ""
		}
	}
	return false, fmt.Sprintf("principal %q may not perform %s: no rule of %s allows it", principal, describe(op, topic, group), a.source)
}

func describe(op Operation, topic, group string) string {
	s := string(op)
	if topic != "" {
		s += " on topic " + topic
	}
	if group != "" {
		s += " as group " + group
	}
	return s
}

// IsAdmin reports whether principal holds the admin operation.
func (a *Authorizer) IsAdmin(principal string) bool {
	ok, _ := a.Authorize(principal, OpAdmin, "", "")
	return ok
}

func (r *Rule) allows(principal string, op Operation, topic, group string) bool {
	if !Match(r.Principal, principal) {
		return false
	}
	if slices.Contains(r.Operations, OpAdmin) {
		return true
	}
	if !slices.Contains(r.Operations, op) {
		return false
	}
	return (topic == "" || matchAny(r.Topics, topic)) && (group == "" || matchAny(r.Groups, group))
}

func matchAny(patterns []string, s string) bool {
	for _, p := range patterns {
		if Match(p, s) {
			return true
		}
	}
	return false
}

// Match reports whether s matches pattern, in which "*" matches any run of
// characters (possibly empty) and every other character itself.
func Match(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, last)
}
