package pgxa_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker/brokertest"
	"github.com/metaq-go/metaq/examples/pgxa"
	"github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/internal/pgtest"
	"github.com/metaq-go/metaq/producer"
	"github.com/metaq-go/metaq/protocol"
)

// Environment of the crashing child process (the test binary re-executed).
const (
	envChild  = "PGXA_TEST_CHILD"
	envDSN    = "PGXA_TEST_DSN"
	envBroker = "PGXA_TEST_BROKER"
	envLog    = "PGXA_TEST_LOG"
	envFail   = "PGXA_TEST_FAILPOINT"
	envRow    = "PGXA_TEST_ROW"
)

const (
	topic = "orders"
	parts = 2
	name  = "tm1"
)

func TestMain(m *testing.M) {
	if os.Getenv(envChild) == "1" {
		os.Exit(m.Run()) // the child needs no server of its own
	}
	os.Exit(pgtest.Main(m))
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// env is one database with the orders table and one broker.
type env struct {
	dsn, broker, logPath string
}

func newEnv(t *testing.T) env {
	dsn := pgtest.NewDB(t)
	ctx := ctxT(t, 30*time.Second)
	c, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	_, err = c.Exec(ctx, "CREATE TABLE orders (id text PRIMARY KEY, amount int NOT NULL)")
	require.NoError(t, err)
	require.NoError(t, c.Close(ctx))
	b := brokertest.Start(t, brokertest.Options{Partitions: parts})
	return env{dsn: dsn, broker: b.Addr(), logPath: filepath.Join(t.TempDir(), "coordinator.log")}
}

func (e env) tm(t testing.TB, fail func(pgxa.Step)) *pgxa.TM {
	t.Helper()
	p, err := producer.New(ctxT(t, 30*time.Second), producer.WithBroker(e.broker, parts))
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	tm, err := pgxa.New(ctxT(t, 30*time.Second), pgxa.Options{DSN: e.dsn, Producer: p, Broker: e.broker, Name: name,
		LogPath: e.logPath, FailPoint: fail, BranchTimeout: 60 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = tm.Close() })
	return tm
}

func insertOrder(id string) pgxa.Work {
	return func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, "INSERT INTO orders (id, amount) VALUES ($1, 42)", id)
		return err
	}
}

func orderMsg(id string) producer.Message {
	return producer.Message{Topic: topic, Payload: []byte("order " + id)}
}

// rowExists reports whether the order row is committed.
func (e env) rowExists(t testing.TB, id string) bool {
	ctx := ctxT(t, 30*time.Second)
	c, err := pgx.Connect(ctx, e.dsn)
	require.NoError(t, err)
	defer c.Close(ctx)
	var n int
	require.NoError(t, c.QueryRow(ctx, "SELECT count(*) FROM orders WHERE id = $1", id).Scan(&n))
	return n == 1
}

// msgCount counts the visible messages of the order with raw gets.
func (e env) msgCount(t testing.TB, id string) int {
	ctx := ctxT(t, 30*time.Second)
	c, err := conn.Dial(ctx, e.broker, conn.Options{})
	require.NoError(t, err)
	defer c.Close()
	n := 0
	for part := 0; part < parts; part++ {
		off := int64(0)
		for {
			rep, err := c.Get(ctx, &protocol.GetRequest{Topic: topic, Group: "check", Partition: int32(part), Offset: off, MaxSize: 1 << 20})
			require.NoError(t, err)
			if rep.Verb == protocol.VerbResult {
				require.EqualValues(t, protocol.CodeNotFound, rep.Code, string(rep.Body))
				break
			}
			it := protocol.NewMessageIterator(rep.Body)
			for it.Next() {
				if string(it.Message().Data) == "order "+id {
					n++
				}
			}
			require.NoError(t, it.Err())
			off += int64(it.Consumed())
		}
	}
	return n
}

// inDoubt counts this TM's prepared transactions in PostgreSQL.
func (e env) preparedPG(t testing.TB) int {
	ctx := ctxT(t, 30*time.Second)
	c, err := pgx.Connect(ctx, e.dsn)
	require.NoError(t, err)
	defer c.Close(ctx)
	var n int
	require.NoError(t, c.QueryRow(ctx, "SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database()").Scan(&n))
	return n
}

func TestRunCommitsRowAndMessage(t *testing.T) {
	e := newEnv(t)
	tm := e.tm(t, nil)
	ctx := ctxT(t, 30*time.Second)
	rec, err := tm.Recover(ctx)
	require.NoError(t, err)
	require.Equal(t, pgxa.Recovered{}, rec)
	_, err = tm.Run(ctx, insertOrder("a1"), orderMsg("a1"))
	require.NoError(t, err)
	require.True(t, e.rowExists(t, "a1"))
	require.Equal(t, 1, e.msgCount(t, "a1"))

	// A failing database step rolls both back: the duplicate key.
	_, err = tm.Run(ctx, func(ctx context.Context, c *pgx.Conn) error {
		if err := insertOrder("a2")(ctx, c); err != nil {
			return err
		}
		return insertOrder("a1")(ctx, c)
	}, orderMsg("a2"))
	require.Error(t, err)
	require.False(t, e.rowExists(t, "a2"))
	require.Equal(t, 0, e.msgCount(t, "a2"))

	// A failing send (a topic name the broker refuses) rolls both back.
	_, err = tm.Run(ctx, insertOrder("a3"), orderMsg("a3"), producer.Message{Topic: "bad/topic", Payload: []byte("x")})
	require.Error(t, err)
	require.False(t, e.rowExists(t, "a3"))
	require.Equal(t, 0, e.msgCount(t, "a3"))
	require.Zero(t, e.preparedPG(t))
}

// TestCrashAtEveryStepRecoversToBothOrNeither kills a TM process (SIGKILL
// from its own fail point) right after each step of the protocol, then
// recovers with a new TM of the same name and log: the row and the message
// are both there (decision logged) or both absent.
func TestCrashAtEveryStepRecoversToBothOrNeither(t *testing.T) {
	e := newEnv(t)
	for i, step := range pgxa.Steps {
		id := fmt.Sprintf("crash-%d-%s", i, step)
		t.Run(string(step), func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestChildTM$", "-test.count=1")
			cmd.Env = append(os.Environ(), envChild+"=1", envDSN+"="+e.dsn, envBroker+"="+e.broker,
				envLog+"="+e.logPath, envFail+"="+string(step), envRow+"="+id)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			require.True(t, errors.As(err, &ee), "the child must die at %s: err %v\n%s", step, err, out)
			ws, ok := ee.Sys().(syscall.WaitStatus)
			require.True(t, ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL, "child killed at %s: %v\n%s", step, err, out)

			tm := e.tm(t, nil)
			rec, err := tm.Recover(ctxT(t, 30*time.Second))
			require.NoError(t, err)
			t.Logf("recovered after a crash at %s: %+v", step, rec)
			row, msgs := e.rowExists(t, id), e.msgCount(t, id)
			require.LessOrEqual(t, msgs, 1, "never duplicated")
			require.Equal(t, row, msgs == 1, "both or neither: row=%v messages=%d", row, msgs)
			decided := i >= 5 // StepLogDecision and later
			require.Equal(t, decided, row, "committed exactly when the decision was logged")
			require.Zero(t, e.preparedPG(t), "nothing left prepared in PostgreSQL")
			again, err := tm.Recover(ctxT(t, 30*time.Second))
			require.NoError(t, err)
			require.Equal(t, pgxa.Recovered{}, again, "a second recovery finds nothing")
		})
	}
}

// TestChildTM is the crashing TM process of TestCrashAtEveryStep…; it does
// nothing in a normal run.
func TestChildTM(t *testing.T) {
	if os.Getenv(envChild) != "1" {
		t.Skip("helper process of TestCrashAtEveryStepRecoversToBothOrNeither")
	}
	e := env{dsn: os.Getenv(envDSN), broker: os.Getenv(envBroker), logPath: os.Getenv(envLog)}
	failAt := pgxa.Step(os.Getenv(envFail))
	tm := e.tm(t, func(s pgxa.Step) {
		if s == failAt {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL) // a real crash: no cleanup runs
			select {}
		}
	})
	id := os.Getenv(envRow)
	_, err := tm.Run(ctxT(t, 30*time.Second), insertOrder(id), orderMsg(id))
	t.Fatalf("the fail point %s did not fire (Run returned %v)", failAt, err)
}
