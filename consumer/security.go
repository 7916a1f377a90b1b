package consumer

import (
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/internal/tlsconf"
)

// WithTLS makes every broker connection use TLS with cfg (TLS 1.2 or later
// is enforced; an empty ServerName is taken from each broker's host). Use
// WithTLSFiles to build one from PEM files.
func WithTLS(cfg *tls.Config) Option {
	return func(o *options) error {
		if cfg == nil {
			return errors.New("consumer: WithTLS: nil config")
		}
		cfg = cfg.Clone()
		cfg.MinVersion = max(cfg.MinVersion, tls.VersionTLS12)
		o.tls = cfg
		return nil
	}
}

// WithTLSFiles makes every broker connection use TLS, trusting the
// certificate authorities in caFile (PEM; "" means the system's roots), and
// presenting the client certificate certFile with its key keyFile when both
// are given (mutual TLS: the broker takes the certificate's CommonName as the
// principal). The files are read once, by New.
func WithTLSFiles(caFile, certFile, keyFile string) Option {
	return func(o *options) error {
		cfg, err := tlsconf.Client(caFile, certFile, keyFile)
		if err != nil {
			return fmt.Errorf("consumer: WithTLSFiles: %w", err)
		}
		o.tls = cfg
		return nil
	}
}

// WithSASL authenticates every broker connection, and every reconnect, as
// user with password, using mechanism "SCRAM-SHA-256" (protocol.MechSCRAMSHA256,
// the default for "": the password never crosses the wire) or "PLAIN"
// (protocol.MechPlain: only over TLS). A broker refusing the credentials
// stops fetching from its partitions (logged at Warn, retried with backoff)
// with an error matching ErrAuth. The password never appears in errors or
// logs.
func WithSASL(mechanism, user, password string) Option {
	return func(o *options) error {
		a := &conn.Auth{Mechanism: mechanism, User: user, Password: password}
		if err := a.Validate(); err != nil {
			return fmt.Errorf("consumer: WithSASL: %w", err)
		}
		o.auth = a
		return nil
	}
}
