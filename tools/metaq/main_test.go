package main

import (
	"os"
	"testing"

	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

// runMainEnv makes the test binary run metaq's main (see TestMain).
const runMainEnv = "METAQ_TEST_RUN_MAIN"

// TestMain starts one ZooKeeper for the package (tests isolate themselves
// with their own zk root). Other test files of this package share it.
func TestMain(m *testing.M) {
	// A child process of a test (startChildBroker) runs the metaq command
	// itself: the test binary is the metaq binary.
	if os.Getenv(runMainEnv) == "1" {
		os.Exit(exitCode(newRootCmd().Execute()))
	}
	// Commands must not pick up the contexts of whoever runs the tests.
	dir, err := os.MkdirTemp("", "metaq-config-")
	if err == nil {
		os.Setenv("METAQ_CONFIG_DIR", dir)
		os.Unsetenv("METAQ_CONTEXT")
	}
	code := zktest.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}
