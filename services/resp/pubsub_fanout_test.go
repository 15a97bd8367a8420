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

// TestCostlyPatternSubscriberIsDisconnected: matching a pattern against a
// channel costs up to the product of their lengths, at every event, which
// other clients' writes make: a subscriber whose patterns pass the steps
// one event's channels allow (globEventBaseSteps, plus a credit for each
// byte of the channel and of the pattern) is disconnected, while one with
// an ordinary pattern gets the event. Before, a 2 KB literal after a '*'
// against a 4 KB bucket name took about 4M steps at each event, on a core
// that the other clients share, for no match at all.
func TestCostlyPatternSubscriberIsDisconnected(t *testing.T) {
	ts := start(t, Config{})
	ctx := context.Background()
	rc := ts.client(t)

	costly := ts.raw(t)
	pat := "kv:bucket:*" + strings.Repeat("a", 2000) + "b"
	costly.send(fmt.Sprintf("*2\r\n$10\r\nPSUBSCRIBE\r\n$%d\r\n%s\r\n", len(pat), pat))
	costly.expect("*3", "$10", "psubscribe", fmt.Sprintf("$%d", len(pat)), pat, ":1")
	other := ts.raw(t)
	other.send("PSUBSCRIBE kv:bucket:*a\r\n")
	other.expect("*3", "$10", "psubscribe", "$12", "kv:bucket:*a", ":1")

	name := strings.Repeat("a", 4000)
	require.NoError(t, rc.HSet(ctx, name, "f", "v").Err())
	ch := "kv:bucket:" + name
	other.expect("*4", "$8", "pmessage", "$12", "kv:bucket:*a", fmt.Sprintf("$%d", len(ch)), ch)
	other.line() // the message's length
	assert.Contains(t, other.line(), `"event":"created"`)

	assert.True(t, costly.closed(), "the subscriber whose patterns passed the steps allowed is still connected")
	assert.EqualValues(t, 1, ts.srv.kicked.Load())
	assert.Equal(t, "PONG", rc.Ping(ctx).Val())
}
