package compattest_test

import (
	"os"
	"testing"

	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

func TestMain(m *testing.M) {
	// restart_test.go re-executes this test binary as a broker subprocess
	// (so that it can be killed with SIGKILL).
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(runChild(spec))
	}
	os.Exit(zktest.Main(m))
}
