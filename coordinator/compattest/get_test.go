package compattest

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/metaq-go/metaq/broker"
	"github.com/metaq-go/metaq/protocol"
)

// TestGetOutOfRangeOffsets mirrors BrokerCommandProcessor.processGetCommand
// with MessageStore.slice and getNearestOffset: a get below the earliest
// stored offset is answered 301 with the earliest offset (the start of the
// first segment); a get at the end is 404; beyond the end 404, or 301 with
// the end when the broker has updateConsumerOffsets=true or the offset is
// Long.MAX_VALUE; a never-written partition is 404. A client that follows
// the 301 (as MetaQ's consumer resets its fetch offset) reads on from there.
func TestGetOutOfRangeOffsets(t *testing.T) {
	for _, update := range []bool{false, true} {
		t.Run(fmt.Sprintf("updateConsumerOffsets=%v", update), func(t *testing.T) {
			e := newEnv(t)
			b := e.startBroker(1, 2, func(o *broker.Options) {
				o.UpdateConsumerOffsets = update
				o.Store.MaxSegmentSize = 1024
				o.Store.Retention.MaxAge = -1
				o.Store.Retention.MaxBytes = 2048
			})
			w := dialWire(t, b.Addr())
			var end int64
			for i := 0; i < 60; i++ {
				payload := fmt.Sprintf("m%03d-%s", i, strings.Repeat("x", 80))
				_, off := w.put("orders", 0, payload)
				end = off + int64(protocol.MessageHeaderSize+len(payload))
			}
			require.NoError(t, b.Store().RunRetention(time.Now()))

			// Below the earliest: 301 with the earliest offset, > 0 after retention.
			rep := w.get("orders", "g", 0, 0, 4096)
			require.EqualValues(t, protocol.CodeMoved, rep.Code, "below the earliest: %s", rep.Body)
			earliest, err := strconv.ParseInt(string(rep.Body), 10, 64)
			require.NoError(t, err)
			require.Positive(t, earliest, "retention removed the first segments")
			for _, off := range []int64{earliest - 1, -1, math.MinInt64} {
				rep = w.get("orders", "g", 0, off, 4096)
				require.EqualValues(t, protocol.CodeMoved, rep.Code, "offset %d", off)
				require.Equal(t, strconv.FormatInt(earliest, 10), string(rep.Body), "offset %d", off)
			}
			msgs := messages(t, w.get("orders", "g", 0, earliest, 4096), earliest)
			require.NotEmpty(t, msgs, "the 301 target is a message boundary")
			require.True(t, strings.HasPrefix(msgs[0].payload, "m0"), "payload %q", msgs[0].payload)

			// At the end: caught up.
			rep = w.get("orders", "g", 0, end, 4096)
			require.EqualValues(t, protocol.CodeNotFound, rep.Code, "at the end: %s", rep.Body)

			// Beyond the end: 404, or 301 with the end when updateConsumerOffsets.
			rep = w.get("orders", "g", 0, end+5000, 4096)
			if update {
				require.EqualValues(t, protocol.CodeMoved, rep.Code, "beyond the end: %s", rep.Body)
				require.Equal(t, strconv.FormatInt(end, 10), string(rep.Body))
			} else {
				require.EqualValues(t, protocol.CodeNotFound, rep.Code, "beyond the end: %s", rep.Body)
			}
			// Long.MAX_VALUE asks for the end either way.
			rep = w.get("orders", "g", 0, math.MaxInt64, 4096)
			require.EqualValues(t, protocol.CodeMoved, rep.Code, "MAX_VALUE: %s", rep.Body)
			require.Equal(t, strconv.FormatInt(end, 10), string(rep.Body))

			// A partition never written: the store does not exist, 404.
			for _, off := range []int64{0, 100, math.MaxInt64} {
				rep = w.get("orders", "g", 1, off, 4096)
				require.EqualValues(t, protocol.CodeNotFound, rep.Code, "never written, offset %d: %s", off, rep.Body)
			}
		})
	}
}
