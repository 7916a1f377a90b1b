package main

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"

	"github.com/spf13/pflag"

	"github.com/metaq-go/metaq/consumer"
	"github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/internal/secretfile"
	"github.com/metaq-go/metaq/internal/tlsconf"
	"github.com/metaq-go/metaq/producer"
	"github.com/metaq-go/metaq/protocol"
)

// Security flags: every command that talks to brokers (stats, topics,
// cluster, healthcheck, groups, produce, consume, tx, bench, dashboard, top)
// connects with them: through clusterview.WithDial (root.go), newProducer
// and newConsumer. The password itself is never a flag (it would show in the process
// list): it comes from --password-file or the METAQ_PASSWORD variable.
const (
	flagTLS           = "tls"
	flagTLSCA         = "tls-ca"
	flagTLSCert       = "tls-cert"
	flagTLSKey        = "tls-key"
	flagUser          = "user"
	flagPasswordFile  = "password-file"
	flagSASLMechanism = "sasl-mechanism"
	envPassword       = "METAQ_PASSWORD"
)

func addSecurityFlags(pf *pflag.FlagSet) {
	pf.Bool(flagTLS, false, "connect to brokers over TLS (implied by --tls-ca; without it the system's CAs are trusted) (env METAQ_TLS)")
	pf.String(flagTLSCA, "", "PEM file of the CA that signed the brokers' certificates; connect over TLS (env METAQ_TLS_CA)")
	pf.String(flagTLSCert, "", "client certificate (PEM) for mutual TLS, with --tls-key (env METAQ_TLS_CERT)")
	pf.String(flagTLSKey, "", "private key (PEM) of --tls-cert (env METAQ_TLS_KEY)")
	pf.String(flagUser, "", "authenticate to brokers as this user, with the password of --password-file or $"+envPassword+" (env METAQ_USER)")
	pf.String(flagPasswordFile, "", "file holding the password of --user; only you may read it (chmod 600) (env METAQ_PASSWORD_FILE)")
	pf.String(flagSASLMechanism, protocol.MechSCRAMSHA256, "SCRAM-SHA-256 or PLAIN (PLAIN sends the password: use it only with TLS) (env METAQ_SASL_MECHANISM)")
}

// clientSecurity is the TLS configuration and the credentials of every
// broker connection of a command; nil fields mean plaintext, anonymous.
type clientSecurity struct {
	tls  *tls.Config
	auth *conn.Auth
}

// securityState memoises clientSecurity: the files are read once per command.
type securityState struct {
	once sync.Once
	sec  clientSecurity
	err  error
}

// security returns the command's TLS configuration and credentials, from
// flags, METAQ_* variables and the context (cmd_context.go).
func (g *globals) security() (clientSecurity, error) {
	g.sec.once.Do(func() { g.sec.sec, g.sec.err = g.loadSecurity() })
	return g.sec.sec, g.sec.err
}

func (g *globals) loadSecurity() (clientSecurity, error) {
	var sec clientSecurity
	ca, cert, key := g.v.GetString(flagTLSCA), g.v.GetString(flagTLSCert), g.v.GetString(flagTLSKey)
	if g.v.GetBool(flagTLS) || ca != "" || cert != "" || key != "" {
		cfg, err := tlsconf.Client(ca, cert, key)
		if err != nil {
			return sec, usageError{fmt.Errorf("--tls-ca/--tls-cert/--tls-key: %w", err)}
		}
		sec.tls = cfg
	}
	user := g.v.GetString(flagUser)
	pw, source, err := g.password()
	switch {
	case err != nil:
		return sec, err
	case user == "" && source != "":
		return sec, usageError{fmt.Errorf("%s gives a password but no --user: pass --user NAME (or METAQ_USER)", source)}
	case user == "":
		return sec, nil
	case source == "":
		return sec, usageError{fmt.Errorf("--user %s needs a password: pass --password-file FILE or set %s", user, envPassword)}
	}
	sec.auth = &conn.Auth{Mechanism: g.v.GetString(flagSASLMechanism), User: user, Password: pw}
	if err := sec.auth.Validate(); err != nil {
		return sec, usageError{fmt.Errorf("--user/--sasl-mechanism: %w", err)}
	}
	return sec, nil
}

// password returns the password and where it came from ("" when none): a
// --password-file given on the command line, else $METAQ_PASSWORD, else
// the password file of METAQ_PASSWORD_FILE or the context.
func (g *globals) password() (pw, source string, err error) {
	file := g.v.GetString(flagPasswordFile)
	fromFile := func() (string, string, error) {
		pw, err := secretfile.Read(file)
		if err != nil {
			return "", "", usageError{fmt.Errorf("--password-file: %w", err)}
		}
		return pw, "--password-file " + file, nil
	}
	if f := g.flags.Lookup(flagPasswordFile); f != nil && f.Changed {
		return fromFile()
	}
	if v := os.Getenv(envPassword); v != "" {
		return v, envPassword, nil
	}
	if file != "" {
		return fromFile()
	}
	return "", "", nil
}

// producerSecurity returns the producer options of the security flags.
func (g *globals) producerSecurity() ([]producer.Option, error) {
	sec, err := g.security()
	if err != nil {
		return nil, err
	}
	var opts []producer.Option
	if sec.tls != nil {
		opts = append(opts, producer.WithTLS(sec.tls))
	}
	if a := sec.auth; a != nil {
		opts = append(opts, producer.WithSASL(a.Mechanism, a.User, a.Password))
	}
	return opts, nil
}

// consumerSecurity returns the consumer options of the security flags.
func (g *globals) consumerSecurity() ([]consumer.Option, error) {
	sec, err := g.security()
	if err != nil {
		return nil, err
	}
	var opts []consumer.Option
	if sec.tls != nil {
		opts = append(opts, consumer.WithTLS(sec.tls))
	}
	if a := sec.auth; a != nil {
		opts = append(opts, consumer.WithSASL(a.Mechanism, a.User, a.Password))
	}
	return opts, nil
}

// brokerConnOptions are the connection options of the security flags, for
// clusterview.WithDial.
func (g *globals) brokerConnOptions() (conn.Options, error) {
	sec, err := g.security()
	return conn.Options{TLS: sec.tls, Auth: sec.auth}, err
}
