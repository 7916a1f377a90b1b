// Command pgxa-demo inserts rows into PostgreSQL and sends one message per
// row to a metaq broker, each pair in one two-phase-commit transaction
// (package pgxa). It first recovers what a previous run left in doubt.
//
//	go run ./examples/pgxa/cmd/pgxa-demo --dsn 'host=127.0.0.1 user=postgres dbname=demo' \
//	    --broker 127.0.0.1:8123 --log /var/lib/pgxa/tm1.log -n 10
//
// PostgreSQL needs max_prepared_transactions > 0. Set
// PGXA_FAILPOINT=<step> (begin, insert, send, prepare-pg, prepare-broker,
// log-decision, commit-pg, commit-broker, forget) to make the process exit
// abruptly right after that step of its first transaction; run it again
// without it to watch the recovery.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/metaq-go/metaq/examples/pgxa"
	"github.com/metaq-go/metaq/producer"
)

func main() {
	dsn := flag.String("dsn", "host=127.0.0.1 user=postgres dbname=postgres sslmode=disable", "PostgreSQL DSN")
	brokerAddr := flag.String("broker", "127.0.0.1:8123", "broker host:port")
	parts := flag.Int("partitions", 1, "partitions per topic on the broker")
	topic := flag.String("topic", "orders", "topic")
	name := flag.String("name", "demo", "transaction manager name (gid prefix, XA qualifier)")
	logPath := flag.String("log", "pgxa-demo.log", "coordinator log file")
	n := flag.Int("n", 10, "transactions to run")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *dsn, *brokerAddr, *parts, *topic, *name, *logPath, *n); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, dsn, brokerAddr string, parts int, topic, name, logPath string, n int) error {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	if _, err := c.Exec(ctx, "CREATE TABLE IF NOT EXISTS pgxa_demo (id text PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())"); err != nil {
		return err
	}
	c.Close(ctx)
	p, err := producer.New(ctx, producer.WithBroker(brokerAddr, parts))
	if err != nil {
		return err
	}
	defer p.Close(context.Background())
	failAt := pgxa.Step(os.Getenv("PGXA_FAILPOINT"))
	tm, err := pgxa.New(ctx, pgxa.Options{DSN: dsn, Producer: p, Broker: brokerAddr, Name: name, LogPath: logPath,
		FailPoint: func(s pgxa.Step) {
			if s == failAt {
				fmt.Fprintf(os.Stderr, "pgxa-demo: fail point %s: exiting abruptly\n", s)
				os.Exit(3)
			}
		}})
	if err != nil {
		return err
	}
	defer tm.Close()
	rec, err := tm.Recover(ctx)
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	fmt.Printf("recovered: %+v\n", rec)
	start := time.Now()
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("%s-%d-%d", name, start.UnixNano(), i)
		gtrid, err := tm.Run(ctx, func(ctx context.Context, c *pgx.Conn) error {
			_, err := c.Exec(ctx, "INSERT INTO pgxa_demo (id) VALUES ($1)", id)
			return err
		}, producer.Message{Topic: topic, Payload: []byte(id)})
		if err != nil {
			return err
		}
		fmt.Printf("committed %s (row and message %s)\n", gtrid, id)
	}
	fmt.Printf("%d transactions in %v\n", n, time.Since(start).Round(time.Millisecond))
	return nil
}
