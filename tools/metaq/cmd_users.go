package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/metaq-go/metaq/internal/security"
)

// `metaq users add|remove|list`: the broker's users file ([security]
// usersFile, docs/SECURITY.md). Passwords come from stdin or
// --password-file, never from a flag value (the process list shows flags).
func newUsersCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "users",
		Short: "manage the broker's users file ([security] usersFile): SCRAM-SHA-256 credentials",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{errors.New("users: missing subcommand: use `metaq users add|remove|list`")}
		},
	}
	cmd.AddCommand(newUsersAddCmd(), newUsersRemoveCmd(), newUsersListCmd(g))
	return cmd
}

func usersFileFlag(cmd *cobra.Command) *string {
	p := cmd.Flags().String("users-file", "", "the users file ([security] usersFile of the brokers)")
	_ = cmd.MarkFlagRequired("users-file")
	return p
}

// loadUsersForEdit reads the users file; a missing file is an empty one.
func loadUsersForEdit(path string) (*security.Users, error) {
	u, err := security.LoadUsers(path)
	if err != nil {
		if _, serr := os.Stat(path); errors.Is(serr, fs.ErrNotExist) {
			return security.NewUsers(), nil
		}
		return nil, err
	}
	return u, nil
}

func newUsersAddCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "add NAME",
		Short: "add a user, or set a user's new password (brokers reload the file on SIGHUP)",
		Example: "  metaq users add alice --users-file /etc/metaq/users.yaml          # type the password\n" +
			"  metaq users add alice --users-file users.yaml --password-file pw.txt\n" +
			"  printf '%s\\n' \"$PW\" | metaq users add alice --users-file users.yaml",
		Args: usageArgs(cobra.ExactArgs(1)),
	}
	file := usersFileFlag(cmd)
	pwFile := cmd.Flags().String("password-file", "", "read the password from this file (first line) instead of stdin")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		name := args[0]
		if err := security.ValidUserName(name); err != nil {
			return usageError{err}
		}
		u, err := loadUsersForEdit(*file)
		if err != nil {
			return err
		}
		pw, err := readPassword(cmd, *pwFile)
		if err != nil {
			return err
		}
		c, err := security.NewCredentials(name, pw)
		if err != nil {
			return err
		}
		_, existed := u.Lookup(name)
		if err := u.Set(name, c); err != nil {
			return err
		}
		if err := u.Save(*file); err != nil {
			return err
		}
		verb := "added"
		if existed {
			verb = "changed the password of"
		}
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s user %s in %s (send SIGHUP to the brokers that use it)\n", verb, name, *file)
		return err
	}
	return cmd
}

// readPassword reads the password from path (its first line), else from
// stdin: without echo when stdin is a terminal, else its first line.
func readPassword(cmd *cobra.Command, path string) (string, error) {
	var line string
	switch in := cmd.InOrStdin(); {
	case path != "":
		data, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("read the password: %w", err)
		}
		line, _, _ = strings.Cut(string(data), "\n")
	case isTerminal(in):
		f := in.(*os.File)
		fmt.Fprint(cmd.ErrOrStderr(), "password: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(cmd.ErrOrStderr())
		if err != nil {
			return "", fmt.Errorf("read the password from the terminal: %w", err)
		}
		line = string(b)
	default:
		s, err := bufio.NewReader(in).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("read the password from stdin: %w", err)
		}
		line = s
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", usageError{errors.New("empty password: give it on stdin or with --password-file")}
	}
	return pw, nil
}

// isTerminal reports whether a stream (stdin, stdout) is a terminal: for
// reading a password without echo and for the TUI of metaq top.
func isTerminal(stream any) bool {
	f, ok := stream.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func newUsersRemoveCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "remove NAME",
		Short:   "remove a user (connections already authenticated stay until they close)",
		Example: "  metaq users remove alice --users-file /etc/metaq/users.yaml",
		Args:    usageArgs(cobra.ExactArgs(1)),
	}
	file := usersFileFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		u, err := security.LoadUsers(*file)
		if err != nil {
			return err
		}
		if !u.Remove(args[0]) {
			return fmt.Errorf("no user %s in %s (see `metaq users list --users-file %s`)", args[0], *file, *file)
		}
		if err := u.Save(*file); err != nil {
			return err
		}
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "removed user %s from %s (send SIGHUP to the brokers that use it)\n", args[0], *file)
		return err
	}
	return cmd
}

// userRow is one line of `metaq users list`: never any credential.
type userRow struct {
	Name      string `json:"name"`
	Mechanism string `json:"mechanism"`
}

func newUsersListCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "list the users and their mechanism",
		Example: "  metaq users list --users-file /etc/metaq/users.yaml",
		Args:    usageArgs(cobra.NoArgs),
	}
	file := usersFileFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		u, err := security.LoadUsers(*file)
		if err != nil {
			return err
		}
		rows := []userRow{}
		for _, n := range u.Names() {
			rows = append(rows, userRow{Name: n, Mechanism: security.MechanismSCRAMSHA256})
		}
		return printList(cmd.OutOrStdout(), g, rows, "no users in "+*file, func(w io.Writer, rows []userRow) error {
			out := make([][]string, len(rows))
			for i, r := range rows {
				out[i] = []string{r.Name, r.Mechanism}
			}
			return printTable(w, []string{"NAME", "MECHANISM"}, out)
		})
	}
	return cmd
}
