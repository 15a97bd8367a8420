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
