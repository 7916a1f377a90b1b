package broker

import (
	"github.com/metaq-go/metaq/broker/replica"
	"github.com/metaq-go/metaq/protocol"
)

func (cn *conn) handleStats(r *protocol.StatsRequest) {
	if r.Item == "config" {
		cn.out = protocol.AppendResult(cn.out, protocol.CodeOK, r.OpaqueID, cn.b.configShown)
		return
	}
	// Building the body walks every partition and sorts the topics: off the loop.
	item, opaque, rs := r.Item, r.OpaqueID, cn.replica // cn.replica is the loop's
	cn.dispatch(opaque, 0, func() {
		defer cn.finishRead(0)
		runHook(&protocol.StatsRequest{Item: item, OpaqueID: opaque}, false)
		var body []byte
		if item == replica.StatsItem && rs != nil {
			// A follower's periodic read of the partition list.
			body = cn.b.replicationStateBody(rs)
		} else {
			body = cn.b.statsBody(item)
		}
		if body == nil {
			body = protocol.AppendStatsBody(nil, nil)
		}
		cn.replyAsync(protocol.AppendResult(nil, protocol.CodeOK, opaque, body))
	})
}
