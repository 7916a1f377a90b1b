package security

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode"

	"github.com/xdg-go/scram"
	"go.yaml.in/yaml/v3"
)

// Users file constants.
const (
	// MechanismSCRAMSHA256 is the only credential kind of the users file.
	MechanismSCRAMSHA256 = "SCRAM-SHA-256"
	// MinIterations is the least PBKDF2 iteration count accepted (RFC 7677).
	MinIterations = 4096
	// DefaultIterations is the count NewCredentials uses.
	DefaultIterations = 4096
	// saltSize is the salt NewCredentials draws; minSaltSize the least accepted.
	saltSize    = 24
	minSaltSize = 16
	keySize     = 32 // SHA-256
	usersFormat = 1
	// maxUserName bounds a user name (it becomes a principal in logs and replies).
	maxUserName = 128
)

var (
	// ErrBadUsersFile: the users file cannot be used; the message names the
	// file, the entry and what to fix.
	ErrBadUsersFile = errors.New("security: bad users file")
	// ErrBadUserName: a user name that the users file cannot hold.
	ErrBadUserName = errors.New("security: bad user name")
)

// Credentials are a user's SCRAM-SHA-256 stored credentials.
type Credentials struct {
	Salt       []byte
	Iterations int
	StoredKey  []byte
	ServerKey  []byte
}

// NewCredentials derives the stored credentials of password with a fresh
// random salt and DefaultIterations. The password is SASLprepped as the
// SCRAM client does.
func NewCredentials(user, password string) (Credentials, error) {
	salt := make([]byte, saltSize)
	if _, err := rand.Read(salt); err != nil {
		return Credentials{}, fmt.Errorf("security: draw a salt: %w", err)
	}
	return deriveCredentials(user, password, salt, DefaultIterations)
}

func deriveCredentials(user, password string, salt []byte, iters int) (Credentials, error) {
	c, err := scram.SHA256.NewClient(user, password, "")
	if err != nil {
		return Credentials{}, fmt.Errorf("security: the password cannot be used (SASLprep): %w", err)
	}
	sc, err := c.GetStoredCredentialsWithError(scram.KeyFactors{Salt: string(salt), Iters: iters})
	if err != nil {
		return Credentials{}, fmt.Errorf("security: derive credentials: %w", err)
	}
	return Credentials{Salt: salt, Iterations: iters, StoredKey: sc.StoredKey, ServerKey: sc.ServerKey}, nil
}

// Verify reports whether password matches the credentials (constant-time
// comparison of the StoredKey it derives).
func (c Credentials) Verify(user, password string) bool {
	got, err := deriveCredentials(user, password, c.Salt, c.Iterations)
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(got.StoredKey, c.StoredKey) == 1
}

func (c Credentials) stored() scram.StoredCredentials {
	return scram.StoredCredentials{KeyFactors: scram.KeyFactors{Salt: string(c.Salt), Iters: c.Iterations},
		StoredKey: c.StoredKey, ServerKey: c.ServerKey}
}

// Users is the content of a users file: user name → credentials. A loaded
// Users is not modified by the broker; the CLI edits a copy and saves it.
type Users struct {
	users map[string]Credentials
}

// NewUsers returns an empty set of users.
func NewUsers() *Users { return &Users{users: map[string]Credentials{}} }

// Lookup returns a user's credentials.
func (u *Users) Lookup(name string) (Credentials, bool) {
	c, ok := u.users[name]
	return c, ok
}

// Names lists the users, sorted.
func (u *Users) Names() []string {
	names := make([]string, 0, len(u.users))
	for n := range u.users {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Len is the number of users.
func (u *Users) Len() int { return len(u.users) }

// Set adds or replaces a user.
func (u *Users) Set(name string, c Credentials) error {
	if err := ValidUserName(name); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return fmt.Errorf("%w: user %q: %v", ErrBadUsersFile, name, err)
	}
	u.users[name] = c
	return nil
}

// Remove deletes a user; false when there was none.
func (u *Users) Remove(name string) bool {
	_, ok := u.users[name]
	delete(u.users, name)
	return ok
}

// ValidUserName checks a user name: 1..128 printable characters without
// spaces, commas or '=' (SCRAM escapes them, and they would make logs and
// ACL files ambiguous), not "anonymous" (the unauthenticated principal).
func ValidUserName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrBadUserName)
	case len(name) > maxUserName:
		return fmt.Errorf("%w: %q is longer than %d bytes", ErrBadUserName, name, maxUserName)
	case name == AnonymousPrincipal:
		return fmt.Errorf("%w: %q is the principal of unauthenticated clients; choose another name", ErrBadUserName, name)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) || r == ',' || r == '=' || r == '*' {
			return fmt.Errorf("%w: %q contains %q; use letters, digits and punctuation other than , = *", ErrBadUserName, name, r)
		}
	}
	return nil
}

func (c Credentials) validate() error {
	switch {
	case c.Iterations < MinIterations:
		return fmt.Errorf("iterations %d is below %d (RFC 7677): recreate the user with `metaq users add`", c.Iterations, MinIterations)
	case len(c.Salt) < minSaltSize:
		return fmt.Errorf("salt has %d bytes, want at least %d: recreate the user with `metaq users add`", len(c.Salt), minSaltSize)
	case len(c.StoredKey) != keySize:
		return fmt.Errorf("storedKey has %d bytes, want %d (SHA-256): recreate the user with `metaq users add`", len(c.StoredKey), keySize)
	case len(c.ServerKey) != keySize:
		return fmt.Errorf("serverKey has %d bytes, want %d (SHA-256): recreate the user with `metaq users add`", len(c.ServerKey), keySize)
	}
	return nil
}

// userEntry is one user in the file.
type userEntry struct {
	Mechanism  string `yaml:"mechanism"`
	Iterations int    `yaml:"iterations"`
	Salt       string `yaml:"salt"`
	StoredKey  string `yaml:"storedKey"`
	ServerKey  string `yaml:"serverKey"`
}

var userEntryKeys = []string{"mechanism", "iterations", "salt", "storedKey", "serverKey"}

type usersDoc struct {
	Version int                  `yaml:"version"`
	Users   map[string]userEntry `yaml:"users"`
}

// LoadUsers reads a users file. A missing file is an error: the broker
// must not start open when its configuration names credentials it cannot
// read.
func LoadUsers(path string) (*Users, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %v (create it with `metaq users add NAME --users-file %s`)", ErrBadUsersFile, path, err, path)
	}
	return ParseUsers(path, data)
}

// ParseUsers parses the content of a users file; source names it in errors.
func ParseUsers(source string, data []byte) (*Users, error) {
	bad := func(line int, format string, args ...any) error {
		where := source
		if line > 0 {
			where = fmt.Sprintf("%s:%d", source, line)
		}
		return fmt.Errorf("%w %s: %s", ErrBadUsersFile, where, fmt.Sprintf(format, args...))
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, bad(0, "not valid YAML: %v", err)
	}
	u := NewUsers()
	if len(root.Content) == 0 {
		return u, nil // an empty file: no users yet
	}
	doc := root.Content[0]
	if doc.Kind != yaml.MappingNode {
		return nil, bad(doc.Line, "want a mapping with version and users")
	}
	var version int
	for i := 0; i+1 < len(doc.Content); i += 2 {
		k, v := doc.Content[i], doc.Content[i+1]
		switch k.Value {
		case "version":
			if err := v.Decode(&version); err != nil || version != usersFormat {
				return nil, bad(v.Line, "version %q is not supported (want %d): this file was written by another metaq version", v.Value, usersFormat)
			}
		case "users":
			if err := parseUserEntries(u, v, bad); err != nil {
				return nil, err
			}
		default:
			return nil, bad(k.Line, "unknown key %q (the file has version and users)", k.Value)
		}
	}
	return u, nil
}

func parseUserEntries(u *Users, users *yaml.Node, bad func(int, string, ...any) error) error {
	if users.Kind == yaml.ScalarNode && users.Tag == "!!null" {
		return nil
	}
	if users.Kind != yaml.MappingNode {
		return bad(users.Line, "users must be a mapping of user name → credentials")
	}
	for i := 0; i+1 < len(users.Content); i += 2 {
		k, v := users.Content[i], users.Content[i+1]
		name := k.Value
		if err := ValidUserName(name); err != nil {
			return bad(k.Line, "%v", err)
		}
		if _, dup := u.users[name]; dup {
			return bad(k.Line, "user %q is listed twice; remove one entry", name)
		}
		if v.Kind != yaml.MappingNode {
			return bad(v.Line, "user %q: want mechanism, iterations, salt, storedKey and serverKey", name)
		}
		for j := 0; j+1 < len(v.Content); j += 2 {
			if !slices.Contains(userEntryKeys, v.Content[j].Value) {
				return bad(v.Content[j].Line, "user %q: unknown key %q (valid: %s)", name, v.Content[j].Value, strings.Join(userEntryKeys, ", "))
			}
		}
		var e userEntry
		if err := v.Decode(&e); err != nil {
			return bad(v.Line, "user %q: %v", name, err)
		}
		c, err := e.credentials()
		if err != nil {
			return bad(v.Line, "user %q: %v", name, err)
		}
		u.users[name] = c
	}
	return nil
}

func (e userEntry) credentials() (Credentials, error) {
	if e.Mechanism != MechanismSCRAMSHA256 {
		return Credentials{}, fmt.Errorf("mechanism %q is not supported (want %s)", e.Mechanism, MechanismSCRAMSHA256)
	}
	c := Credentials{Iterations: e.Iterations}
	for _, f := range []struct {
		name string
		in   string
		out  *[]byte
	}{{"salt", e.Salt, &c.Salt}, {"storedKey", e.StoredKey, &c.StoredKey}, {"serverKey", e.ServerKey, &c.ServerKey}} {
		b, err := base64.StdEncoding.DecodeString(f.in)
		if err != nil {
			return Credentials{}, fmt.Errorf("%s is not standard base64: %v", f.name, err)
		}
		*f.out = b
	}
	return c, c.validate()
}

// Marshal encodes the users file.
func (u *Users) Marshal() ([]byte, error) {
	doc := usersDoc{Version: usersFormat, Users: map[string]userEntry{}}
	for name, c := range u.users {
		enc := base64.StdEncoding.EncodeToString
		doc.Users[name] = userEntry{Mechanism: MechanismSCRAMSHA256, Iterations: c.Iterations,
			Salt: enc(c.Salt), StoredKey: enc(c.StoredKey), ServerKey: enc(c.ServerKey)}
	}
	var buf bytes.Buffer
	buf.WriteString("# metaq users file: SCRAM-SHA-256 salted credentials (no passwords).\n# Manage it with `metaq users add|remove|list NAME --users-file FILE`.\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return buf.Bytes(), enc.Close()
}

// Save writes the users file atomically: a temporary file in the same
// directory (mode 0600), fsynced, renamed over path, then the directory
// fsynced. A reader sees the old file or the new one, never a mix.
func (u *Users) Save(path string) error {
	data, err := u.Marshal()
	if err != nil {
		return fmt.Errorf("security: encode users file: %w", err)
	}
	return writeFileAtomic(path, data, 0o600)
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("security: write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if err = f.Chmod(mode); err == nil {
		if _, err = f.Write(data); err == nil {
			err = f.Sync()
		}
	}
	if err != nil {
		return fmt.Errorf("security: write %s: %w", f.Name(), err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("security: write %s: %w", f.Name(), err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("security: replace %s: %w", path, err)
	}
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
