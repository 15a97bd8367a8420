package resp

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSubscriberFanOutIsBounded: the messages one event makes for one
// subscriber (a pmessage for every pattern it matches, each carrying the
// pattern) are bounded by MaxReplyBytes, as Redis bounds a subscriber's
// output buffer (client-output-buffer-limit pubsub): past it the
// subscriber is disconnected, even one that reads, rather than the server
// building them all. Before, 1,000,000 patterns sent in one 17 MB request
// made each event build about 700 MB for the subscriber, and keep it.
func TestSubscriberFanOutIsBounded(t *testing.T) {
	const limit = 64 << 10
	ts := start(t, Config{MaxReplyBytes: limit})
	ctx := context.Background()
	rc := ts.client(t)

	// Patterns that all match kv:created, each distinct: one event makes
	// a pmessage of each, well past the limit in all.
	const n = 2000
	var sb strings.Builder
	fmt.Fprintf(&sb, "*%d\r\n$10\r\nPSUBSCRIBE\r\n", n+1)
	for i := range n {
		p := fmt.Sprintf("*[k%d]v:*", i)
		fmt.Fprintf(&sb, "$%d\r\n%s\r\n", len(p), p)
	}
	big := ts.raw(t)
	big.send(sb.String())
	for range n {
		big.expect("*3", "$10", "psubscribe")
		big.line() // the pattern's length
		big.line() // the pattern
		big.line() // the count
	}

	// A subscriber whose messages stay under the limit gets them.
	small := ts.raw(t)
	small.send("PSUBSCRIBE kv:created\r\n")
	small.expect("*3", "$10", "psubscribe", "$10", "kv:created", ":1")

	require.NoError(t, rc.HSet(ctx, "cart", "f", "v").Err())
	small.expect("*4", "$8", "pmessage", "$10", "kv:created", "$10", "kv:created")
	assert.Contains(t, small.line(), "$")
	assert.Contains(t, small.line(), `"bucket":"cart"`)

	// The big one read all along, but is disconnected all the same.
	assert.True(t, big.closed(), "the subscriber whose messages passed MaxReplyBytes is still connected")
	assert.EqualValues(t, 1, ts.srv.kicked.Load())
	assert.Equal(t, "PONG", rc.Ping(ctx).Val())
}
