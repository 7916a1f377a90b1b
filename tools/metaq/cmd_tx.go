package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/metaq-go/metaq/internal/clusterview"
	"github.com/metaq-go/metaq/protocol"
)

// newTxCmd is `metaq tx list|commit|rollback|forget`: in-doubt XA
// transactions of one broker, over the wire protocol (PROTOCOL.md §7).
func newTxCmd(g *globals) *cobra.Command {
	var broker string
	cmd := &cobra.Command{
		Use:   "tx",
		Short: "list and finish a broker's in-doubt XA transactions",
		Long: `Operate on a broker's XA transactions with the wire protocol.

  list              RECOVER: the prepared (and heuristically completed) XA transactions
  commit KEY        COMMIT_TWO_PHASE of a prepared transaction
  rollback KEY      ROLLBACK of a prepared transaction
  forget KEY        FORGET a heuristically completed transaction

These are the operations a transaction manager performs; an operator uses
them when the manager is lost for good. They are ordinary (not heuristic)
completions: the manager, if it comes back, is answered 200 when it replays
the same decision and XAER_PROTO or XA_RBOTHER when it decided otherwise.`,
		Example: "  metaq tx list --broker 127.0.0.1:8123\n  metaq tx list --zk 127.0.0.1:2181\n  metaq tx commit --broker 127.0.0.1:8123 XID:1:0a0b:01:rm1",
	}
	cmd.PersistentFlags().StringVar(&broker, "broker", "", "broker host:port (required, except for list with --zk)")
	list := &cobra.Command{
		Use:   "list",
		Short: "list in-doubt XA transactions (RECOVER) of one broker, or of every registered broker with --zk",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			if broker == "" && len(g.zkServers()) > 0 {
				return txListAll(c, g)
			}
			body, err := txRequest(c.Context(), g, broker, "null", protocol.TxRecover)
			if err != nil {
				return err
			}
			return printTxList(c, g, clusterview.TxRows(body, nil, ""), false)
		},
	}
	finish := func(use, short string, typ protocol.TxType) *cobra.Command {
		return &cobra.Command{
			Use:   use + " KEY",
			Short: short,
			Args:  usageArgs(cobra.ExactArgs(1)),
			RunE: func(c *cobra.Command, args []string) error {
				k, err := protocol.ParseTxKey(args[0])
				if err != nil || k.Kind != protocol.TxKeyXA {
					return usageError{fmt.Errorf("%q is not an XA key (XID:<formatId>:<hex gtrid>:<hex bqual>:<qualifier>)", args[0])}
				}
				if _, err := txRequest(c.Context(), g, broker, k.String(), typ); err != nil {
					return err
				}
				if g.output() == "json" {
					return printJSON(c.OutOrStdout(), map[string]string{"key": k.String(), "done": use})
				}
				_, err = fmt.Fprintf(c.OutOrStdout(), "%s: %s\n", use, k.String())
				return err
			},
		}
	}
	cmd.AddCommand(list,
		finish("commit", "commit a prepared XA transaction (COMMIT_TWO_PHASE)", protocol.TxCommitTwoPhase),
		finish("rollback", "roll back a prepared XA transaction", protocol.TxRollback),
		finish("forget", "forget a heuristically completed XA transaction", protocol.TxForget))
	return cmd
}

// txRequest sends one transaction request to the broker and returns the
// body of its 200 reply.
func txRequest(ctx context.Context, g *globals, broker, key string, typ protocol.TxType) (string, error) {
	if broker == "" {
		return "", usageError{errors.New("--broker host:port is required")}
	}
	addr, err := brokerAddr(broker)
	if err != nil {
		return "", usageError{err}
	}
	ctx, cancel := context.WithTimeout(ctx, g.timeout())
	defer cancel()
	c, err := clusterview.DialBroker(ctx, addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	body, err := clusterview.TxDo(ctx, c, key, typ)
	if err != nil {
		return "", clusterview.BrokerErr(addr, fmt.Sprintf("%s %s", typ, key), err)
	}
	return body, nil
}

// txListAll is `metaq tx list` with --zk: RECOVER on every registered broker.
func txListAll(c *cobra.Command, g *globals) error {
	brokers, err := registeredBrokers(c.Context(), g)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context(), g.timeout())
	defer cancel()
	rows, res := clusterview.RecoverAll(ctx, brokers)
	return errors.Join(printTxList(c, g, rows, true), clusterview.FailedBrokers(res, len(brokers)))
}

// printTxList prints RECOVER rows; perBroker adds the broker columns.
func printTxList(c *cobra.Command, g *globals, rows []clusterview.TxRow, perBroker bool) error {
	if g.output() == "json" {
		return printJSON(c.OutOrStdout(), rows)
	}
	header := []string{"KEY", "FORMAT", "GTRID", "BQUAL", "QUALIFIER"}
	if perBroker {
		header = append([]string{"BROKER", "ADDR"}, header...)
	}
	table := make([][]string, len(rows))
	for i, r := range rows {
		table[i] = []string{r.Key, fmt.Sprint(r.FormatID), r.GTRID, r.BQual, r.Qualifier}
		if perBroker {
			table[i] = append([]string{fmt.Sprint(*r.BrokerID), r.Addr}, table[i]...)
		}
	}
	return printTable(c.OutOrStdout(), header, table)
}
