package main

import (
	"os"
	"testing"

	"github.com/metaq-go/metaq/zkrecipes/zktest"
)

// TestMain starts one ZooKeeper for the package (tests isolate themselves
// with their own zk root). Other test files of this package share it.
func TestMain(m *testing.M) { os.Exit(zktest.Main(m)) }
