package main

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"github.com/metaq-go/metaq/internal/secretfile"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/metaq-go/metaq/internal/tlsconf"
)

// adminSecurity says how the admin port protects itself.
type adminSecurity struct {
	// TLS, when set, makes the admin port HTTPS with the broker's
	// certificate; a client certificate is verified when presented.
	TLS *tlsconf.Server
	// TokenFile holds the bearer token of the mutating endpoints; "" = none.
	TokenFile string
	// IsAdmin says whether a verified client certificate's principal (its
	// Subject CommonName) may use the mutating endpoints; nil = none may.
	IsAdmin func(principal string) bool
}

// adminAuth guards the admin port's mutating endpoints: a bearer token
// (constant-time compare) or an admin principal's client certificate.
// /metrics and /healthz stay open.
type adminAuth struct {
	file    string
	isAdmin func(string) bool
	log     *slog.Logger
	token   atomic.Pointer[[sha256.Size]byte] // hash of the token; nil = none configured
}

func newAdminAuth(sec adminSecurity, log *slog.Logger) (*adminAuth, error) {
	a := &adminAuth{file: sec.TokenFile, isAdmin: sec.IsAdmin, log: log}
	return a, a.reload()
}

// reload reads the token file again; on error the previous token stays.
func (a *adminAuth) reload() error {
	if a.file == "" {
		return nil
	}
	tok, err := readAdminToken(a.file)
	if err != nil {
		return err
	}
	h := sha256.Sum256([]byte(tok))
	a.token.Store(&h)
	return nil
}

// readAdminToken reads a token file that only its owner can read (the
// same rule as every other secret file: secretfile.Read).
func readAdminToken(file string) (string, error) {
	raw, err := secretfile.Read(file)
	if err != nil {
		return "", fmt.Errorf("admin: adminTokenFile: %w", err)
	}
	tok := strings.TrimSpace(raw)
	if len(tok) < 16 {
		return "", errors.New("admin: adminTokenFile " + file + " holds a token shorter than 16 characters: put a long random one in it (e.g. openssl rand -hex 32)")
	}
	return tok, nil
}

// require wraps a mutating endpoint.
func (a *adminAuth) require(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.allowed(r) {
			h(w, r)
			return
		}
		a.log.Warn("admin: unauthorised request refused", "remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path)
		w.Header().Set("WWW-Authenticate", `Bearer realm="metaq-admin"`)
		msg := "unauthorised: send Authorization: Bearer <the token in the broker's adminTokenFile>, or use an admin client certificate"
		if a.token.Load() == nil {
			msg = "mutating admin endpoints are disabled: set [security] adminTokenFile on the broker (or connect with an admin client certificate)"
		}
		http.Error(w, msg, http.StatusUnauthorized)
	}
}

func (a *adminAuth) allowed(r *http.Request) bool {
	if want := a.token.Load(); want != nil {
		if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
			if subtle.ConstantTimeCompare(got[:], want[:]) == 1 {
				return true
			}
		}
	}
	if a.isAdmin != nil && r.TLS != nil {
		if p := tlsconf.PeerCommonName(*r.TLS); p != "" && a.isAdmin(p) {
			return true
		}
	}
	return false
}
