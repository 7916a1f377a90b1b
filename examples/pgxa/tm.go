// Package pgxa is a worked example of two-phase commit across PostgreSQL
// and a metaq broker: a small transaction manager (TM) that inserts a row
// and sends a message atomically — both or neither, across crashes of the
// TM itself.
//
// One transaction (Run) goes through these steps; Step names the point
// right after each one (a fail point can crash the TM there):
//
//	StepBegin          PostgreSQL BEGIN; broker XA Start
//	StepInsert         INSERT the row
//	StepSend           put the message into the broker branch
//	StepPreparePG      PREPARE TRANSACTION '<gid>'
//	StepPrepareBroker  broker End + Prepare (vote XA_OK)
//	StepLogDecision    COMMIT <gtrid> appended to the coordinator log, fsynced
//	StepCommitPG       COMMIT PREPARED '<gid>'
//	StepCommitBroker   broker two-phase Commit
//	StepForget         DONE <gtrid> appended to the log
//
// The decision point is the fsync of the COMMIT record (presumed abort):
// before it, any failure rolls both branches back; after it, both are
// committed, by Run or else by Recover. Recover runs at start-up, before
// new transactions: it reads the log, lists PostgreSQL's prepared
// transactions (pg_prepared_xacts) whose gid carries this TM's prefix and
// the broker's prepared branches (RECOVER, filtered by the resource name),
// commits those with a decision and rolls back the others. Commits are
// idempotent: PostgreSQL's prepared transaction is gone once committed, the
// broker answers a replayed commit 200 (or XAER_NOTA once forgotten).
//
// Branches that never reached PREPARE need no recovery: PostgreSQL rolls a
// transaction back when its connection dies, and the broker rolls back an
// unprepared XA branch at its timeout (Options.BranchTimeout) or restart;
// until then its message is invisible.
//
// Several TMs may share a database and a broker if their Names differ; a
// TM must not Recover while another instance with its Name runs.
package pgxa

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/metaq-go/metaq/producer"
)

// Step is a point in a transaction's protocol, right after a step.
type Step string

// The steps of Run, in order.
const (
	StepBegin         Step = "begin"
	StepInsert        Step = "insert"
	StepSend          Step = "send"
	StepPreparePG     Step = "prepare-pg"
	StepPrepareBroker Step = "prepare-broker"
	StepLogDecision   Step = "log-decision"
	StepCommitPG      Step = "commit-pg"
	StepCommitBroker  Step = "commit-broker"
	StepForget        Step = "forget"
)

// Steps lists every step in protocol order.
var Steps = []Step{StepBegin, StepInsert, StepSend, StepPreparePG, StepPrepareBroker,
	StepLogDecision, StepCommitPG, StepCommitBroker, StepForget}

// FormatID is the XA format id of the TM's branches ("MQXA").
const FormatID int32 = 0x4d515841

// branchQualifier names the broker branch of a global transaction.
var branchQualifier = []byte("mq")

// Options configure a TM.
type Options struct {
	// DSN of the PostgreSQL database (pgx syntax). It needs
	// max_prepared_transactions > 0.
	DSN string
	// Producer sends the messages; the TM does not close it.
	Producer *producer.Producer
	// Broker is the broker's address (host:port).
	Broker string
	// Name identifies this TM: the prefix of its PostgreSQL gids and the
	// broker resource's unique qualifier. Letters, digits, '_', '-'; at
	// most 30 characters. The same name must be used to recover.
	Name string
	// LogPath is the coordinator log file.
	LogPath string
	// BranchTimeout bounds an unprepared broker branch (default 30 s).
	BranchTimeout time.Duration
	// FailPoint, when set, is called after each step (tests crash there).
	FailPoint func(Step)
}

// TM is the transaction manager. Run may be called concurrently.
type TM struct {
	opts Options
	xa   *producer.XAResource
	log  *Log
}

// New opens the log and the broker resource. Call Recover before Run.
func New(ctx context.Context, o Options) (*TM, error) {
	if o.Name == "" || len(o.Name) > 30 || strings.ContainsFunc(o.Name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-')
	}) {
		return nil, fmt.Errorf("pgxa: name %q: want 1..30 letters, digits, '_', '-'", o.Name)
	}
	if o.Producer == nil || o.DSN == "" || o.Broker == "" || o.LogPath == "" {
		return nil, errors.New("pgxa: DSN, Producer, Broker and LogPath are required")
	}
	if o.BranchTimeout <= 0 {
		o.BranchTimeout = 30 * time.Second
	}
	if o.FailPoint == nil {
		o.FailPoint = func(Step) {}
	}
	xa, err := o.Producer.XAResource(ctx, producer.XAOptions{Broker: o.Broker, Name: "pgxa-" + o.Name, Timeout: o.BranchTimeout})
	if err != nil {
		return nil, err
	}
	l, err := OpenLog(o.LogPath)
	if err != nil {
		return nil, err
	}
	return &TM{opts: o, xa: xa, log: l}, nil
}

// Close closes the log.
func (tm *TM) Close() error { return tm.log.Close() }

// gidPrefix starts every PostgreSQL gid of this TM.
func (tm *TM) gidPrefix() string { return "pgxa:" + tm.opts.Name + ":" }

func (tm *TM) gid(gtrid string) string { return tm.gidPrefix() + gtrid }

func (tm *TM) xid(gtrid string) producer.XID {
	return producer.XID{FormatID: FormatID, GlobalID: []byte(gtrid), BranchQualifier: branchQualifier}
}

// newGtrid returns a fresh global transaction id: <name>.<random hex>.
func (tm *TM) newGtrid() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return tm.opts.Name + "." + hex.EncodeToString(b[:])
}

// Work is what one transaction does in PostgreSQL; it runs inside the
// PostgreSQL branch (BEGIN ... PREPARE TRANSACTION).
type Work func(ctx context.Context, c *pgx.Conn) error

// Run executes work in PostgreSQL and sends msgs to the broker as one
// global transaction and returns its gtrid. A nil error means both
// committed. An error before the decision means both rolled back (or will
// be, by PostgreSQL or the broker's timeout); an error after it means the
// decision is logged and Recover will finish the commit.
func (tm *TM) Run(ctx context.Context, work Work, msgs ...producer.Message) (string, error) {
	gtrid := tm.newGtrid()
	decided, err := tm.run(ctx, gtrid, work, msgs)
	if err != nil && !decided {
		tm.abort(gtrid)
	}
	if err != nil {
		return gtrid, fmt.Errorf("pgxa: transaction %s (decided=%v): %w", gtrid, decided, err)
	}
	return gtrid, nil
}

func (tm *TM) run(ctx context.Context, gtrid string, work Work, msgs []producer.Message) (decided bool, err error) {
	fp := tm.opts.FailPoint
	c, err := pgx.Connect(ctx, tm.opts.DSN)
	if err != nil {
		return false, err
	}
	defer c.Close(context.Background())
	xid := tm.xid(gtrid)
	if _, err := c.Exec(ctx, "BEGIN"); err != nil {
		return false, err
	}
	if err := tm.xa.Start(ctx, xid); err != nil {
		return false, err
	}
	fp(StepBegin)
	if err := work(ctx, c); err != nil {
		return false, err
	}
	fp(StepInsert)
	for _, m := range msgs {
		if _, err := tm.xa.Send(ctx, xid, m); err != nil {
			return false, err
		}
	}
	fp(StepSend)
	if _, err := c.Exec(ctx, "PREPARE TRANSACTION "+quote(tm.gid(gtrid))); err != nil {
		return false, err
	}
	fp(StepPreparePG)
	if err := tm.xa.End(ctx, xid); err != nil {
		return false, err
	}
	vote, err := tm.xa.Prepare(ctx, xid)
	if err != nil {
		return false, err
	}
	fp(StepPrepareBroker)
	if err := tm.log.append("COMMIT", gtrid); err != nil {
		return false, err
	}
	fp(StepLogDecision)
	if _, err := c.Exec(ctx, "COMMIT PREPARED "+quote(tm.gid(gtrid))); err != nil {
		return true, err
	}
	fp(StepCommitPG)
	if vote != producer.XAReadOnly {
		if err := tm.xa.Commit(ctx, xid, false); err != nil && !errors.Is(err, producer.XAErrNOTA) {
			return true, err
		}
	}
	fp(StepCommitBroker)
	if err := tm.log.append("DONE", gtrid); err != nil {
		return true, err
	}
	fp(StepForget)
	return true, nil
}

// abort rolls back what may be prepared of an undecided transaction (best
// effort; Recover or the timeouts finish the rest).
func (tm *TM) abort(gtrid string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = tm.xa.Rollback(ctx, tm.xid(gtrid))
	if c, err := pgx.Connect(ctx, tm.opts.DSN); err == nil {
		_, _ = c.Exec(ctx, "ROLLBACK PREPARED "+quote(tm.gid(gtrid))) // fails harmlessly when not prepared
		c.Close(ctx)
	}
}

// Recovered says what Recover did.
type Recovered struct {
	CommittedPG, RolledBackPG         int
	CommittedBroker, RolledBackBroker int
	Decisions                         int // COMMIT records without DONE found in the log
	// Hazards are gtrids an operator completed against the TM's decision
	// on the broker (heuristic hazard).
	Hazards []string
}

// Recover finishes every in-doubt transaction of this TM: decided ones
// (COMMIT in the log) are committed in both resource managers, the others
// rolled back. Call it at start-up, before Run.
func (tm *TM) Recover(ctx context.Context) (Recovered, error) {
	var rec Recovered
	decided, err := tm.log.Decided()
	if err != nil {
		return rec, err
	}
	rec.Decisions = len(decided)
	if err := tm.recoverPG(ctx, decided, &rec); err != nil {
		return rec, err
	}
	if err := tm.recoverBroker(ctx, decided, &rec); err != nil {
		return rec, err
	}
	for gtrid := range decided { // both branches are committed now
		if err := tm.log.append("DONE", gtrid); err != nil {
			return rec, err
		}
	}
	return rec, nil
}

func (tm *TM) recoverPG(ctx context.Context, decided map[string]bool, rec *Recovered) error {
	c, err := pgx.Connect(ctx, tm.opts.DSN)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	rows, err := c.Query(ctx, "SELECT gid FROM pg_prepared_xacts WHERE database = current_database() AND starts_with(gid, $1)", tm.gidPrefix())
	if err != nil {
		return fmt.Errorf("pgxa: list prepared transactions: %w", err)
	}
	gids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("pgxa: list prepared transactions: %w", err)
	}
	for _, gid := range gids {
		gtrid := strings.TrimPrefix(gid, tm.gidPrefix())
		verb := "ROLLBACK PREPARED "
		if decided[gtrid] {
			verb = "COMMIT PREPARED "
		}
		if _, err := c.Exec(ctx, verb+quote(gid)); err != nil {
			return fmt.Errorf("pgxa: %s%s: %w", verb, gid, err)
		}
		if decided[gtrid] {
			rec.CommittedPG++
		} else {
			rec.RolledBackPG++
		}
	}
	return nil
}

func (tm *TM) recoverBroker(ctx context.Context, decided map[string]bool, rec *Recovered) error {
	xids, err := tm.xa.Recover(ctx)
	if err != nil {
		return err
	}
	for _, x := range xids {
		if x.FormatID != FormatID {
			continue
		}
		gtrid := string(x.GlobalID)
		var err error
		if decided[gtrid] {
			err = tm.xa.Commit(ctx, x, false)
			rec.CommittedBroker++
		} else {
			err = tm.xa.Rollback(ctx, x)
			rec.RolledBackBroker++
		}
		if errors.Is(err, producer.XAHeurCom) || errors.Is(err, producer.XAHeurRB) {
			// An operator finished it; a mismatch with our decision is a
			// heuristic hazard only a person can repair.
			if decided[gtrid] != errors.Is(err, producer.XAHeurCom) {
				rec.Hazards = append(rec.Hazards, gtrid)
			}
			err = tm.xa.Forget(ctx, x)
		}
		if err != nil && !errors.Is(err, producer.XAErrNOTA) {
			return err
		}
	}
	return nil
}

// quote makes a SQL string literal.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
