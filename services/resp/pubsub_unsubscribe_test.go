package resp

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// UNSUBSCRIBE of a name the client is not subscribed to frees nothing:
// the bound on what a client subscribes to does not move, so a client
// cannot unsubscribe from names it never had to subscribe past it.
func TestUnsubscribeOfAnUnknownNameFreesNoRoom(t *testing.T) {
	const limit = 64 << 10
	ts := start(t, Config{MaxRequestBytes: limit})
	r := ts.raw(t)
	const tooMany = "-ERR too many subscriptions: their names pass 65536 bytes"
	total := 0
	for from := 0; ; from += 500 {
		var req strings.Builder
		fmt.Fprintf(&req, "*%d\r\n$9\r\nSUBSCRIBE\r\n", 501)
		for i := from; i < from+500; i++ {
			name := fmt.Sprintf("channel-%012d", i)
			fmt.Fprintf(&req, "$%d\r\n%s\r\n", len(name), name)
		}
		r.send(req.String())
		refused := false
		for range 500 {
			line := r.line()
			if line == tooMany {
				refused = true
				break
			}
			require.Equal(t, "*3", line)
			for range 5 {
				r.line()
			}
			total++
		}
		if refused {
			break
		}
		require.Less(t, total, 10_000, "never refused")
	}

	// Names never subscribed to, and one subscribed to, unsubscribed twice.
	r.send("UNSUBSCRIBE never-subscribed-1 never-subscribed-2 channel-000000000000 channel-000000000000\r\n")
	r.expect(
		"*3", "$11", "unsubscribe", "$18", "never-subscribed-1", ":"+strconv.Itoa(total),
		"*3", "$11", "unsubscribe", "$18", "never-subscribed-2", ":"+strconv.Itoa(total),
		"*3", "$11", "unsubscribe", "$20", "channel-000000000000", ":"+strconv.Itoa(total-1),
		"*3", "$11", "unsubscribe", "$20", "channel-000000000000", ":"+strconv.Itoa(total-1),
	)
	// One name of 20 bytes left: room for one of 20, not for one longer
	// by the 84 bytes the unknown names would have freed.
	long := strings.Repeat("l", 20+84)
	r.send("SUBSCRIBE " + long + "\r\n")
	r.expect(tooMany)
	r.send("SUBSCRIBE channel-999999999999\r\n")
	r.expect("*3", "$9", "subscribe", "$20", "channel-999999999999", ":"+strconv.Itoa(total))
}
