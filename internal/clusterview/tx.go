package clusterview

import (
	"context"
	"fmt"
	"strings"

	"github.com/metaq-go/metaq/internal/conn"
	"github.com/metaq-go/metaq/protocol"
)

// TxDo sends one transaction request on c and returns the body of its 200
// reply, or the broker's XA error.
func TxDo(ctx context.Context, c *conn.Conn, key string, typ protocol.TxType) (string, error) {
	rep, err := c.Do(ctx, conn.ProtocolRequest(&protocol.TransactionRequest{TxKey: key, SessionID: "metaq-cli", Type: typ}))
	if err != nil {
		return "", err
	}
	if rep.Code != protocol.CodeOK {
		if xe, perr := protocol.ParseXAError(string(rep.Body)); perr == nil {
			return "", fmt.Errorf("%s (%d): %s", protocol.XACodeName(xe.Code), xe.Code, xe.Msg)
		}
		return "", fmt.Errorf("broker replied %d: %s", rep.Code, rep.Body)
	}
	return string(rep.Body), nil
}

// TxRow is one in-doubt XA transaction of `metaq tx list`.
type TxRow struct {
	BrokerID  *int   `json:"broker_id,omitempty"` // with --zk
	Addr      string `json:"addr,omitempty"`
	Key       string `json:"key"`
	FormatID  int32  `json:"format_id"`
	GTRID     string `json:"gtrid"`
	BQual     string `json:"bqual"`
	Qualifier string `json:"qualifier"`
}

// TxRows parses a RECOVER body of a broker (nil and "" for the single broker of --broker).
func TxRows(body string, brokerID *int, addr string) []TxRow {
	rows := []TxRow{}
	for _, line := range strings.Split(body, "\r\n") {
		if line == "" {
			continue
		}
		r := TxRow{BrokerID: brokerID, Addr: addr, Key: line}
		if k, err := protocol.ParseTxKey(line); err == nil && k.Kind == protocol.TxKeyXA {
			r.FormatID, r.Qualifier = k.FormatID, k.UniqueQualifier
			r.GTRID, r.BQual = fmt.Sprintf("%x", k.GlobalTxID), fmt.Sprintf("%x", k.BranchQualifier)
		}
		rows = append(rows, r)
	}
	return rows
}

// RecoverAll sends RECOVER to every registered broker concurrently and
// returns the in-doubt transactions of those that answered, with every
// broker's result (FailedBrokers tells the ones that did not).
func RecoverAll(ctx context.Context, brokers []Broker) ([]TxRow, map[int]Result[string]) {
	res := OnEveryBroker(ctx, brokers, "RECOVER", func(ctx context.Context, cn *conn.Conn) (string, error) {
		return TxDo(ctx, cn, "null", protocol.TxRecover)
	})
	rows := []TxRow{}
	for _, br := range brokers {
		if r, ok := res[br.ID]; ok && r.Err == nil {
			rows = append(rows, TxRows(r.Val, &br.ID, br.Addr)...)
		}
	}
	return rows, res
}
