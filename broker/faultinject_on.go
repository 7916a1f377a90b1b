//go:build faultinject

package broker

import (
	"log/slog"
	"os"

	"github.com/metaq-go/metaq/protocol"
)

// panicTopicEnv names the environment variable that, in a binary built with
// `-tags faultinject`, makes every put, get, offset and sync request for
// that topic panic in its handler (the hardening test of handler-panic
// recovery against the real binary, broker/faulttest). Builds without the
// tag have no such code path.
const panicTopicEnv = "METAQ_FAULTINJECT_PANIC_TOPIC"

func init() {
	poisoned := os.Getenv(panicTopicEnv)
	if poisoned == "" {
		return
	}
	slog.Warn("fault injection is on: requests for this topic panic in their handler", "env", panicTopicEnv, "topic", poisoned)
	handlerHook = func(req protocol.Request, onLoop bool) {
		var t string
		switch r := req.(type) {
		case *protocol.PutRequest:
			t = r.Topic
		case *protocol.GetRequest:
			t = r.Topic
		case *protocol.OffsetRequest:
			t = r.Topic
		case *protocol.SyncRequest:
			t = r.Topic
		}
		if t == poisoned {
			where := "on a read worker"
			if onLoop {
				where = "on the event loop"
			}
			panic("fault injection (" + panicTopicEnv + "): request for topic " + t + " " + where)
		}
	}
}
