package broker_test

import (
	"os"
	"testing"

	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

func TestMain(m *testing.M) {
	// crash_test.go re-executes this test binary as a broker subprocess.
	if dir := os.Getenv(childDirEnv); dir != "" {
		os.Exit(runChildBroker(dir))
	}
	os.Exit(zktest.Main(m))
}
