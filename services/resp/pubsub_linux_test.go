//go:build linux

package resp

import (
	"bufio"
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A channel or pattern added to a subscription gets only the events
// published after its SUBSCRIBE, as in Redis: not those published before,
// still waiting in the client's mailbox behind a socket it reads slowly.
// (A client that looked at a bucket and then subscribes to it must not be
// told of an end that came before it looked.)
func TestLaterSubscribeGetsNoEarlierEvent(t *testing.T) {
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			ts := start(t, Config{GoroutinePerClient: mode.goroutinePerClient,
				WriteTimeout: time.Minute, SubscriberMailbox: 100_000})
			ctx := context.Background()
			rc := ts.client(t)
			nc := dialSmallReceiveBuffer(t, ts.addr, 4096)
			rd := bufio.NewReaderSize(nc, 1<<20)
			r := &raw{t: t, nc: nc, rd: rd}
			r.send("SUBSCRIBE kv:created\r\n")
			r.expect("*3", "$9", "subscribe", "$10", "kv:created", ":1")
			// Not read meanwhile: the socket fills, the subscription's
			// goroutine waits in a write, and the events queue in the
			// mailbox, "old"'s Exited the last.
			long := strings.Repeat("n", 3000)
			i := 0
			require.Eventually(t, func() bool {
				i++
				require.NoError(t, rc.HSet(ctx, fmt.Sprintf("%s%d", long, i), "f", "v").Err())
				buf := make([]byte, 1<<20)
				stacks := string(buf[:runtime.Stack(buf, true)])
				return strings.Contains(stacks, "resp.(*subscriber).deliver") &&
					strings.Contains(stacks, "net.(*conn).Write")
			}, 10*time.Second, time.Millisecond, "the subscriber's socket never filled")
			for range 1000 { // behind it in the mailbox
				i++
				require.NoError(t, rc.HSet(ctx, fmt.Sprintf("%s%d", long, i), "f", "v").Err())
			}
			require.NoError(t, rc.HSet(ctx, "old", "f", "v").Err())
			require.NoError(t, rc.Del(ctx, "old").Err())
			r.send("SUBSCRIBE kv:exited\r\n")
			// Read on: the Created events, the reply, then what came after
			// it: no Exited but "new"'s.
			var got []string
			subscribed := false
			for len(got) < 2 {
				require.Equal(t, "*3", r.line())
				r.line()
				kind := r.line()
				r.line()
				channel := r.line()
				if kind == "subscribe" {
					require.Equal(t, ":2", r.line())
					subscribed = true
					require.NoError(t, rc.HSet(ctx, "new", "f", "v").Err())
					require.NoError(t, rc.Del(ctx, "new").Err())
					continue
				}
				require.Equal(t, "message", kind)
				r.line()
				body := r.line()
				if strings.Contains(body, `"bucket":"new"`) {
					require.True(t, subscribed)
					got = append(got, channel)
					continue
				}
				require.Equal(t, ChannelCreated, channel, "an event published before SUBSCRIBE %s: %s", channel, body)
			}
			assert.Equal(t, []string{ChannelCreated, ChannelExited}, got)
		})
	}
}

// A RESP3 subscriber that does not read, and whose events fill its socket,
// sends a transaction that unsubscribes it from its last channel: its
// EXEC, which holds every other client's writes back, must not wait for
// the event being written to it (for up to WriteTimeout: 30 s by default,
// an hour here). Once the client reads, it is disconnected for the events
// its full mailbox lost: unsubscribing does not make that loss silent.
func TestRESP3SubscriberUnsubscribingInATransactionDoesNotStallWriters(t *testing.T) {
	ts := start(t, Config{WriteTimeout: time.Hour})
	ctx := context.Background()
	writer := ts.client(t, func(o *redis.Options) { o.ReadTimeout = 20 * time.Second })
	sub := stuckRESP3Subscriber(t, ts, writer, "kv:created", 1)
	sub.send("MULTI\r\nUNSUBSCRIBE\r\nEXEC\r\n")

	// A hang, not a speed: with the stall, this write waits for an hour.
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	require.NoError(t, writer.HSet(wctx, "other", "f", "v").Err(), "writers wait for a subscriber that does not read")
	require.NoError(t, writer.Ping(wctx).Err())

	assert.True(t, sub.closedWithin(time.Minute), "disconnected once it reads, for the events it lost")
	assert.Equal(t, int64(1), ts.srv.kicked.Load(), "counted as a slow subscriber disconnected")
}
