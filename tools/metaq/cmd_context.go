package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/spf13/cobra"
)

// Named contexts, like the nats CLI: a context is a saved --zk/--zk-root pair,
// with the security flags (--tls*, --user, --password-file, --sasl-mechanism;
// never a password), stored as one JSON file per context under the config
// directory:
//
//	$METAQ_CONFIG_DIR (else os.UserConfigDir()/metaq)
//	  contexts/NAME.json   one context
//	  context.txt          the name of the selected context
//
// Precedence for every command: flag > METAQ_* environment > --context NAME
// (or METAQ_CONTEXT) > the selected context > flag defaults. Context values
// are installed as viper defaults, which viper ranks below flags and env.

// metaqContext is one saved context.
type metaqContext struct {
	Name        string `json:"-"`
	ZK          string `json:"zk"`
	ZKRoot      string `json:"zk_root,omitempty"`
	ZKAuthFile  string `json:"zk_auth_file,omitempty"` // a path, never the credentials
	Description string `json:"description,omitempty"`
	contextSecurity
}

// contextSecurity is what a context saves of the security flags. The
// password itself is never saved: only the path of a password file.
type contextSecurity struct {
	TLS           bool   `json:"tls,omitempty"`
	TLSCA         string `json:"tls_ca,omitempty"`
	TLSCert       string `json:"tls_cert,omitempty"`
	TLSKey        string `json:"tls_key,omitempty"`
	User          string `json:"user,omitempty"`
	PasswordFile  string `json:"password_file,omitempty"`
	SASLMechanism string `json:"sasl_mechanism,omitempty"`
}

// securityField is one string security flag of a context.
type securityField struct {
	flag string
	val  *string
	path bool // a file: saved as an absolute path
}

func (s *contextSecurity) fields() []securityField {
	return []securityField{
		{flagTLSCA, &s.TLSCA, true}, {flagTLSCert, &s.TLSCert, true}, {flagTLSKey, &s.TLSKey, true},
		{flagUser, &s.User, false}, {flagPasswordFile, &s.PasswordFile, true}, {flagSASLMechanism, &s.SASLMechanism, false},
	}
}

// apply installs the saved values as viper defaults (below flags and env).
func (s *contextSecurity) apply(g *globals) {
	if s.TLS {
		g.v.SetDefault(flagTLS, true)
	}
	for _, f := range s.fields() {
		if *f.val != "" {
			g.v.SetDefault(f.flag, *f.val)
		}
	}
}

// update sets the values given as flags or METAQ_* variables.
func (s *contextSecurity) update(g *globals) error {
	if g.v.IsSet(flagTLS) {
		s.TLS = g.v.GetBool(flagTLS)
	}
	for _, f := range s.fields() {
		if !g.v.IsSet(f.flag) {
			continue
		}
		v := g.v.GetString(f.flag)
		if f.path && v != "" {
			abs, err := filepath.Abs(v)
			if err != nil {
				return fmt.Errorf("--%s %s: %v", f.flag, v, err)
			}
			v = abs
		}
		*f.val = v
	}
	return nil
}

// rows are the KEY/VALUE lines of `metaq context show`.
func (s *contextSecurity) rows() [][]string {
	out := [][]string{{flagTLS, fmt.Sprint(s.TLS || s.TLSCA != "" || s.TLSCert != "")}}
	for _, f := range s.fields() {
		out = append(out, []string{f.flag, *f.val})
	}
	return out
}

// noContextAnnotation marks a command tree that does not load a context (the
// context commands themselves, so a broken context can still be fixed).
const noContextAnnotation = "metaq.no-context"

const selectedFile = "context.txt"

var contextNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

func validContextName(name string) error {
	if !contextNameRE.MatchString(name) || name == "." || name == ".." {
		return usageError{fmt.Errorf("context name %q: use only letters, digits, '-', '_' and '.'", name)}
	}
	return nil
}

// contextDir is $METAQ_CONFIG_DIR, else os.UserConfigDir()/metaq.
func contextDir() (string, error) {
	if d := os.Getenv("METAQ_CONFIG_DIR"); d != "" {
		return d, nil
	}
	d, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no config directory for contexts (%v): set METAQ_CONFIG_DIR", err)
	}
	return filepath.Join(d, "metaq"), nil
}

func contextFile(dir, name string) string { return filepath.Join(dir, "contexts", name+".json") }

// errNoContext is wrapped when a context file does not exist, errBadContext
// when it does not parse.
var (
	errNoContext  = errors.New("no such context")
	errBadContext = errors.New("bad file")
)

func loadContext(dir, name string) (*metaqContext, error) {
	if err := validContextName(name); err != nil {
		return nil, err
	}
	file := contextFile(dir, name)
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w %q (no file %s)", errNoContext, name, file)
	}
	if err != nil {
		return nil, fmt.Errorf("context %q: %v", name, err)
	}
	c := &metaqContext{Name: name}
	if err := json.Unmarshal(b, c); err != nil {
		return nil, fmt.Errorf("context %q: %w %s: %v: fix it, or replace it with `metaq context save %s --zk host:port`", name, errBadContext, file, err, name)
	}
	return c, nil
}

// contextDirAndSelected returns the contexts' directory and the selected
// context's name ("" if none).
func contextDirAndSelected() (dir, sel string, err error) {
	if dir, err = contextDir(); err != nil {
		return "", "", err
	}
	sel, err = selectedContext(dir)
	return dir, sel, err
}

// selectedContext returns the selected context name, "" if none.
func selectedContext(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, selectedFile))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// writeFileAtomic writes data to a temporary file next to name and renames it.
func writeFileAtomic(name string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

func saveContext(dir string, c *metaqContext) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(contextFile(dir, c.Name), append(b, '\n'))
}

// applyContext loads the context named by --context/METAQ_CONTEXT, else the
// selected one, and installs its values as viper defaults so that flags and
// METAQ_* environment variables still win. Called from the root
// PersistentPreRunE.
func (g *globals) applyContext(cmd *cobra.Command) error {
	for c := cmd; c != nil; c = c.Parent() {
		if c.Annotations[noContextAnnotation] != "" {
			return nil
		}
	}
	dir, err := contextDir()
	name := g.v.GetString("context")
	explicit := name != ""
	if err != nil {
		if explicit {
			return err
		}
		return nil // no config dir and nothing asked for: run without contexts
	}
	if !explicit {
		if name, err = selectedContext(dir); err != nil {
			return fmt.Errorf("reading the selected context: %v", err)
		}
		if name == "" {
			return nil
		}
	}
	c, err := loadContext(dir, name)
	switch {
	case errors.Is(err, errNoContext) && explicit:
		return usageError{fmt.Errorf("--context: %v: see `metaq context ls`, or create it with `metaq context save %s --zk host:port`", err, name)}
	case !explicit && (errors.Is(err, errNoContext) || errors.As(err, new(usageError))):
		return usageError{fmt.Errorf("the selected context (named in %s): %v: select another with `metaq context select NAME`, or save it with `metaq context save %s --zk host:port`",
			filepath.Join(dir, selectedFile), err, name)}
	case err != nil:
		return err
	}
	if c.ZK != "" {
		g.v.SetDefault("zk", c.ZK)
	}
	if c.ZKRoot != "" {
		g.v.SetDefault("zk-root", c.ZKRoot)
	}
	if c.ZKAuthFile != "" {
		g.v.SetDefault("zk-auth-file", c.ZKAuthFile)
	}
	c.contextSecurity.apply(g)
	return nil
}

func newContextCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:         "context",
		Short:       "manage named contexts: saved --zk/--zk-root settings (select one, or pass --context NAME)",
		Annotations: map[string]string{noContextAnnotation: "true"},
		Long: `A context saves ZooKeeper and security settings under a name. The selected
context (or the one named with --context / METAQ_CONTEXT) supplies --zk,
--zk-root, --tls, --tls-ca, --tls-cert, --tls-key, --user, --password-file and
--sasl-mechanism to every command; explicit flags and METAQ_* environment
variables still win. A password is never saved: save --password-file, or set
METAQ_PASSWORD when you run a command.

Contexts are files under $METAQ_CONFIG_DIR, else <user config dir>/metaq:
contexts/NAME.json, and context.txt naming the selected context.`,
		Example: "  metaq context save prod --zk zk1:2181,zk2:2181 --zk-root /meta --description production\n" +
			"  metaq context select prod\n  metaq cluster\n  metaq cluster --context staging",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{errors.New("context: missing subcommand: use save, ls, select, show or rm")}
		},
	}
	cmd.AddCommand(newContextSaveCmd(g), newContextLsCmd(g), newContextSelectCmd(g),
		newContextShowCmd(g), newContextRmCmd(g))
	return cmd
}

func newContextSaveCmd(g *globals) *cobra.Command {
	var description string
	cmd := &cobra.Command{
		Use:   "save NAME --zk host:port [--zk-root /meta] [--tls-ca FILE] [--user NAME --password-file FILE] [--description TEXT]",
		Short: "create or update a context (an update keeps the settings not given; a password is never saved)",
		Example: "  metaq context save prod --zk zk1:2181,zk2:2181 --zk-root /meta\n" +
			"  metaq context save secure --zk zk1:2181 --tls-ca ca.pem --user alice --password-file ~/.metaq/alice.pw",
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			dir, err := contextDir()
			if err != nil {
				return err
			}
			c, err := loadContext(dir, name)
			switch {
			case errors.Is(err, errNoContext), errors.Is(err, errBadContext): // new, or replace a corrupt file
				c = &metaqContext{Name: name}
			case err != nil:
				return err
			}
			// IsSet: a changed flag or a METAQ_* variable, not a flag default.
			if g.v.IsSet("zk") {
				c.ZK = g.v.GetString("zk")
			}
			if g.v.IsSet("zk-root") {
				c.ZKRoot = g.v.GetString("zk-root")
			}
			if g.v.IsSet("zk-auth-file") {
				c.ZKAuthFile = g.v.GetString("zk-auth-file")
			}
			if cmd.Flags().Changed("description") {
				c.Description = description
			}
			if err := c.contextSecurity.update(g); err != nil {
				return usageError{err}
			}
			if c.ZK == "" {
				return usageError{fmt.Errorf("context save %s: need --zk host:port[,host:port...]", name)}
			}
			if c.ZKRoot != "" && !strings.HasPrefix(c.ZKRoot, "/") {
				return usageError{fmt.Errorf("--zk-root %q must be absolute (start with /)", c.ZKRoot)}
			}
			if err := saveContext(dir, c); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "saved context %s to %s\n", name, contextFile(dir, name))
			return nil
		},
	}
	cmd.Flags().StringVar(&description, "description", "", "free text shown by `metaq context ls`")
	return cmd
}

// contextRow is one line of `metaq context ls` and the output of show.
type contextRow struct {
	Name        string `json:"name"`
	ZK          string `json:"zk,omitempty"`
	ZKRoot      string `json:"zk_root,omitempty"`
	Description string `json:"description,omitempty"`
	contextSecurity
	Selected bool   `json:"selected"`
	File     string `json:"file"`
	Error    string `json:"error,omitempty"`
}

func newContextLsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "list the contexts; * marks the selected one",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, sel, err := contextDirAndSelected()
			if err != nil {
				return err
			}
			files, err := filepath.Glob(filepath.Join(dir, "contexts", "*.json"))
			if err != nil {
				return err
			}
			sort.Strings(files)
			rows := []contextRow{}
			for _, f := range files {
				name := strings.TrimSuffix(filepath.Base(f), ".json")
				if validContextName(name) != nil {
					continue
				}
				r := contextRow{Name: name, Selected: name == sel, File: f}
				if c, err := loadContext(dir, name); err != nil {
					r.Error = err.Error()
				} else {
					r.ZK, r.ZKRoot, r.Description = c.ZK, c.ZKRoot, c.Description
				}
				rows = append(rows, r)
			}
			w := cmd.OutOrStdout()
			if g.output() == "json" {
				return printJSON(w, rows)
			}
			if len(rows) == 0 {
				fmt.Fprintf(w, "no contexts in %s: create one with `metaq context save NAME --zk host:port`\n", filepath.Join(dir, "contexts"))
				return nil
			}
			table := make([][]string, len(rows))
			for i, r := range rows {
				name, desc := r.Name, r.Description
				if r.Selected {
					name += " *"
				}
				if r.Error != "" {
					desc = "ERROR: " + r.Error
				}
				table[i] = []string{name, r.ZK, r.ZKRoot, desc}
			}
			return printTable(w, []string{"NAME", "ZK", "ZK ROOT", "DESCRIPTION"}, table)
		},
	}
}

func newContextSelectCmd(*globals) *cobra.Command {
	return &cobra.Command{
		Use:   "select NAME",
		Short: "make a context the default for every command",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := contextDir()
			if err != nil {
				return err
			}
			name := args[0]
			if _, err := loadContext(dir, name); err != nil {
				return unknownContext(err, name)
			}
			if err := writeFileAtomic(filepath.Join(dir, selectedFile), []byte(name+"\n")); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "selected context %s\n", name)
			return nil
		},
	}
}

func newContextShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show [NAME]",
		Short: "print a context (default: --context, else the selected one)",
		Args:  usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, sel, err := contextDirAndSelected()
			if err != nil {
				return err
			}
			name := g.v.GetString("context")
			switch {
			case len(args) == 1:
				name = args[0]
			case name == "":
				name = sel
			}
			if name == "" {
				return usageError{errors.New("no context selected: name one (`metaq context show NAME`), or select one with `metaq context select NAME`")}
			}
			c, err := loadContext(dir, name)
			if err != nil {
				return unknownContext(err, name)
			}
			r := contextRow{Name: name, ZK: c.ZK, ZKRoot: c.ZKRoot, Description: c.Description,
				contextSecurity: c.contextSecurity, Selected: name == sel, File: contextFile(dir, name)}
			w := cmd.OutOrStdout()
			if g.output() == "json" {
				return printJSON(w, r)
			}
			rows := [][]string{{"name", r.Name}, {"zk", r.ZK}, {"zk-root", r.ZKRoot}, {"description", r.Description}}
			rows = append(rows, r.contextSecurity.rows()...)
			return printTable(w, []string{"KEY", "VALUE"}, append(rows, []string{"selected", fmt.Sprint(r.Selected)}, []string{"file", r.File}))
		},
	}
}

func newContextRmCmd(*globals) *cobra.Command {
	return &cobra.Command{
		Use:     "rm NAME",
		Aliases: []string{"remove"},
		Short:   "delete a context (and the selection, if it was selected)",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := contextDir()
			if err != nil {
				return err
			}
			name := args[0]
			if err := validContextName(name); err != nil {
				return err
			}
			sel, _ := selectedContext(dir)
			err = os.Remove(contextFile(dir, name))
			if errors.Is(err, fs.ErrNotExist) && sel != name {
				return unknownContext(fmt.Errorf("%w %q (no file %s)", errNoContext, name, contextFile(dir, name)), name)
			}
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			if sel == name { // also clears a selection whose file is gone
				if err := os.Remove(filepath.Join(dir, selectedFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return err
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed context %s\n", name)
			return nil
		},
	}
}

// unknownContext makes a missing context a usage error (exit 2).
func unknownContext(err error, name string) error {
	if errors.Is(err, errNoContext) {
		return usageError{fmt.Errorf("%v: see `metaq context ls`, or create it with `metaq context save %s --zk host:port`", err, name)}
	}
	return err
}
