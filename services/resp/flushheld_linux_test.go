package resp

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A FLUSHALL pipelined behind replies that wait for the client's socket is
// held until they are out, then run on the client's own goroutine, after
// the commands before it and before those after it.
func TestFlushAllBehindBlockedReplies(t *testing.T) {
	ts := start(t, Config{})
	ctx := context.Background()
	value := strings.Repeat("x", 1<<20)
	require.NoError(t, ts.client(t).HSet(ctx, "big", "f", value).Err())

	c := ts.raw(t)
	c.send(strings.Repeat("HGET big f\r\n", 16) + "HSET k f v\r\nFLUSHALL\r\nEXISTS k\r\nEXISTS big\r\nHSET k f v\r\n")
	if !goroutinePerClient {
		require.Eventually(t, func() bool { return unreadBytes(t, c.nc) > 0 }, 10*time.Second, time.Millisecond)
	}
	other := ts.raw(t)
	other.send("PING\r\n")
	other.expect("+PONG")
	for range 16 {
		require.Equal(t, "$1048576", c.line())
		require.Equal(t, value, c.line())
	}
	c.expect(":1", "+OK", ":0", ":0", ":1")
	other.send("EXISTS big\r\nEXISTS k\r\n")
	other.expect(":0", ":1")
}
