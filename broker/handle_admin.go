package broker

import (
	"github.com/metaq-go/metaq/protocol"
)

func (cn *conn) handleStats(r *protocol.StatsRequest) {
	if r.Item == "config" {
		cn.out = protocol.AppendResult(cn.out, protocol.CodeOK, r.OpaqueID, cn.b.opts.ConfigRaw)
		return
	}
	body := cn.b.statsBody(r.Item)
	if body == nil {
		body = protocol.AppendStatsBody(nil, nil)
	}
	cn.out = protocol.AppendResult(cn.out, protocol.CodeOK, r.OpaqueID, body)
}
