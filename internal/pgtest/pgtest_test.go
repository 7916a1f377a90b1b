package pgtest_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/metaq-go/metaq/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func TestServerAllowsPreparedTransactions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, pgtest.NewDB(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var n string
	if err := c.QueryRow(ctx, "SHOW max_prepared_transactions").Scan(&n); err != nil || n != "20" {
		t.Fatalf("max_prepared_transactions = %q, %v", n, err)
	}
	for _, q := range []string{"CREATE TABLE x(id int)", "BEGIN", "INSERT INTO x VALUES (1)", "PREPARE TRANSACTION 'pgtest-1'"} {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var gids int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM pg_prepared_xacts WHERE gid = 'pgtest-1'").Scan(&gids); err != nil || gids != 1 {
		t.Fatalf("prepared: %d, %v", gids, err)
	}
	if _, err := c.Exec(ctx, "COMMIT PREPARED 'pgtest-1'"); err != nil {
		t.Fatal(err)
	}
}
