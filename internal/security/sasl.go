package security

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/xdg-go/scram"
)

// ErrAuthFailed is the one reason a client gets for any failed
// authentication: it never says whether the user exists. The cause is
// kept apart (AuthError) for the broker's log.
var ErrAuthFailed = errors.New("authentication failed: unknown user, wrong password or malformed exchange")

// AuthError is a failed authentication: User is the name the client
// offered (for the log; "" when the message did not parse), Cause what was
// wrong. It matches ErrAuthFailed with errors.Is; Error returns the
// generic text only.
type AuthError struct {
	User  string
	Cause string
}

func (e *AuthError) Error() string { return ErrAuthFailed.Error() }

// Is makes errors.Is(err, ErrAuthFailed) true.
func (e *AuthError) Is(target error) bool { return target == ErrAuthFailed }

// Authenticator checks SASL exchanges against a set of users. It is safe
// for concurrent use; each SCRAM exchange has its own SCRAMConversation.
type Authenticator struct {
	users  *Users
	secret []byte // keys the stand-in credentials of unknown users
	server *scram.Server
}

// NewAuthenticator returns an Authenticator over users.
func NewAuthenticator(users *Users) (*Authenticator, error) {
	a := &Authenticator{users: users, secret: make([]byte, 32)}
	if _, err := rand.Read(a.secret); err != nil {
		return nil, fmt.Errorf("security: draw a secret: %w", err)
	}
	srv, err := scram.SHA256.NewServer(a.lookup)
	if err != nil {
		return nil, fmt.Errorf("security: SCRAM server: %w", err)
	}
	a.server = srv
	return a, nil
}

// lookup returns a user's stored credentials, or, for an unknown user,
// stand-in credentials with a salt stable per name (RFC 5802 §5.1: the
// exchange runs to the proof and fails there, so it does not reveal
// whether the user exists).
func (a *Authenticator) lookup(user string) (scram.StoredCredentials, error) {
	if c, ok := a.users.Lookup(user); ok {
		return c.stored(), nil
	}
	return a.standIn(user).stored(), nil
}

func (a *Authenticator) standIn(user string) Credentials {
	mac := hmac.New(sha256.New, a.secret)
	mac.Write([]byte(user))
	sum := mac.Sum(nil)
	key := make([]byte, keySize)
	_, _ = rand.Read(key)
	return Credentials{Salt: sum[:saltSize], Iterations: DefaultIterations, StoredKey: key, ServerKey: key}
}

// Plain checks a SASL PLAIN message ("authzid\0user\0password", RFC 4616;
// the authzid must be empty or the user) and returns the user. It costs
// one PBKDF2 derivation, whether the user exists or not: call it off any
// event loop.
func (a *Authenticator) Plain(msg []byte) (string, error) {
	parts := bytes.Split(msg, []byte{0})
	if len(parts) != 3 {
		return "", &AuthError{Cause: "PLAIN message is not authzid NUL user NUL password"}
	}
	authz, user, password := string(parts[0]), string(parts[1]), string(parts[2])
	if authz != "" && authz != user {
		return "", &AuthError{User: user, Cause: fmt.Sprintf("authorization identity %q differs from the user (acting as another user is not supported)", authz)}
	}
	c, known := a.users.Lookup(user)
	if !known {
		c = a.standIn(user)
	}
	if ok := c.Verify(user, password); !ok || !known {
		if !known {
			return "", &AuthError{User: user, Cause: "unknown user"}
		}
		return "", &AuthError{User: user, Cause: "wrong password"}
	}
	return user, nil
}

// SCRAMConversation is the server side of one SCRAM-SHA-256 exchange.
type SCRAMConversation struct {
	a    *Authenticator
	conv *scram.ServerConversation
}

// NewSCRAM starts a SCRAM-SHA-256 exchange.
func (a *Authenticator) NewSCRAM() *SCRAMConversation {
	return &SCRAMConversation{a: a, conv: a.server.NewConversation()}
}

// Step takes the next client message and returns the server's answer.
// done reports that the exchange is over: then user is the authenticated
// user and reply the server-final message (err nil), or err is an
// *AuthError. When not done, reply is the server-first message and the
// client must send its client-final message.
func (c *SCRAMConversation) Step(msg []byte) (reply []byte, done bool, user string, err error) {
	out, err := c.conv.Step(string(msg))
	name := c.conv.Username()
	if err == nil && !c.conv.Done() {
		return []byte(out), false, "", nil
	}
	_, known := c.a.users.Lookup(name)
	switch {
	case err != nil && !known && name != "":
		return nil, true, "", &AuthError{User: name, Cause: "unknown user"}
	case err != nil:
		return nil, true, "", &AuthError{User: name, Cause: err.Error()}
	case !c.conv.Valid() || !known:
		return nil, true, "", &AuthError{User: name, Cause: "invalid proof"}
	}
	if authz := c.conv.AuthzID(); authz != "" && authz != name {
		return nil, true, "", &AuthError{User: name, Cause: fmt.Sprintf("authorization identity %q differs from the user", authz)}
	}
	return []byte(out), true, name, nil
}
