package replica_test

import (
	"os"
	"testing"

	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

// TestMain runs one ZooKeeper for the package (the failover tests need it).
func TestMain(m *testing.M) { os.Exit(zktest.Main(m)) }
