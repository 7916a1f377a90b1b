package protocol

import "fmt"

// MaxTopicLen is the longest legal topic name, in bytes (PROTOCOL §3).
const MaxTopicLen = 255

// TopicRule says in words which topic names are legal; errors quote it.
const TopicRule = `a topic name is 1-255 ASCII letters, digits, '.', '_' or '-', and not "." or ".."`

// TopicNameError is the error of ValidTopic: Name is the refused name and
// Reason what is wrong with it.
type TopicNameError struct {
	Name   string
	Reason string // e.g. `has '/' at byte 3`
}

func (e *TopicNameError) Error() string {
	return fmt.Sprintf("invalid topic name %s: %s; %s", quoteToken([]byte(e.Name)), e.Reason, TopicRule)
}

// ValidTopic returns nil if name is a legal topic name, else a
// *TopicNameError that says what is wrong and what is allowed.
//
// This is the one topic-name rule of the module: the wire decoder, the broker
// configuration, the store, the coordinator and the clients all use it. MetaQ
// uses a topic name as a directory name (<dataPath>/<topic>-<partition>) and
// as a ZooKeeper node name (/meta/brokers/topics/<topic>), so a name must be a
// single path component on both: no '/', no NUL, no spaces or other bytes a
// shell or ZooKeeper treats specially, and not "." or ".." (which name the
// directory itself and its parent). Names like "a.b", "..x", "meta-test" and
// "a_b" are legal. Checking a legal name does not allocate.
func ValidTopic[T ~string | ~[]byte](name T) error {
	switch n := len(name); {
	case n == 0:
		return &TopicNameError{Reason: "it is empty"}
	case n > MaxTopicLen:
		return &TopicNameError{Name: string(name), Reason: fmt.Sprintf("it is %d bytes long, more than %d", n, MaxTopicLen)}
	case string(name) == "." || string(name) == "..":
		return &TopicNameError{Name: string(name), Reason: "it is a relative path component"}
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' {
			continue
		}
		return &TopicNameError{Name: string(name), Reason: fmt.Sprintf("it has %s at byte %d", describeByte(c), i)}
	}
	return nil
}

// describeByte names a byte for an error message: quoted if it is printable
// ASCII, else in hex (a multi-byte UTF-8 character shows its first byte).
func describeByte(c byte) string {
	if c > ' ' && c < 0x7f {
		return fmt.Sprintf("%q", c)
	}
	if c == ' ' {
		return "a space"
	}
	return fmt.Sprintf("byte 0x%02x", c)
}
