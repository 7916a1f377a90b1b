// Command metaq is the metaq broker daemon and operator tool in one binary:
//
//	metaq broker --config conf/server.ini     run a broker
//	metaq produce --zk 127.0.0.1:2181 --topic T
//	metaq consume --zk 127.0.0.1:2181 --group G --topic T
//	metaq bench produce|consume|e2e ...
//
// Run `metaq help` for every command. Exit codes: 0 success, 1 failure, 2
// bad usage, 3 a check failed (healthcheck, verify).
package main

import (
	"errors"
	"fmt"
	"os"
)

func main() {
	err := newRootCmd().Execute()
	os.Exit(exitCode(err))
}

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
	exitCheck   = 3
)

// usageError marks an error as bad usage (exit 2).
type usageError struct{ error }

// checkError marks a failed check (exit 3).
type checkError struct{ error }

func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(os.Stderr, "metaq:", err)
	var ue usageError
	var ce checkError
	switch {
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &ce):
		return exitCheck
	}
	return exitFailure
}
