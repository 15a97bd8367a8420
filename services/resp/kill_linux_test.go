//go:build linux

package resp

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A client of the event loop that CLIENT KILL has closed (its reply says
// so) runs nothing more: neither what it had sent that the server had not
// read yet (Redis frees a killed client with its unread input; from
// review: the loop read and ran it once the socket woke it), nor what it
// sends afterwards. The loop is kept busy (waiting for a stalled disk to
// answer another client) between the kill and its next look at the
// killed socket.
func TestKilledLoopClientRunsNothingMore(t *testing.T) {
	for _, tc := range []struct {
		name      string
		afterKill bool // the victim's command is sent after the kill's reply, not before the kill
	}{
		{"unread at the kill", false},
		{"sent after the kill", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startStalledLoop(t)
			ctx := context.Background()
			victim := s.raw(t)
			vid := victim.clientID()

			resume := s.faults.Stall()
			defer resume()
			writer := s.raw(t)
			writer.send("HSET w f 1\r\n") // the loop waits for the disk to answer it
			s.awaitInMemory(t, "w")
			awaitLoopOnDisk(t)
			if !tc.afterKill {
				victim.send("HSET late f 1\r\n") // in the socket (loopback), unread: the loop is busy
			}
			s.own.send("CLIENT KILL ID " + vid + "\r\n") // own is on a goroutine of its own (SAVE)
			s.own.expect(":1")
			if tc.afterKill {
				victim.send("HSET late f 1\r\n")
			}

			resume()
			writer.expect(":1")
			assert.True(t, victim.closed())
			n, err := s.rc.Exists(ctx, "late").Result()
			require.NoError(t, err)
			assert.Zero(t, n, "the killed client's command ran")
		})
	}
}

// A subscriber closed by CLIENT KILL is not a slow subscriber: INFO's
// slow_subscribers_disconnected (and the log's warning) count the
// subscribers disconnected for falling behind, not the operator's kills
// (from review: the event write that the close failed counted as one).
func TestKilledSubscriberIsNotCountedSlow(t *testing.T) {
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			ts := start(t, Config{GoroutinePerClient: mode.goroutinePerClient, WriteTimeout: time.Minute,
				Listener: smallSendBuffers{mustListen(t)}})
			ctx := context.Background()
			sub := dialSmallReceiveBuffer(t, ts.addr, 4096)
			_, err := sub.Write([]byte("SUBSCRIBE kv:created\r\n"))
			require.NoError(t, err)
			require.Eventually(t, func() bool { return unreadBytes(t, sub) > 0 }, 10*time.Second, time.Millisecond)
			rc := ts.client(t)
			name := strings.Repeat("n", 4000)
			for i := range 600 { // 2.4 MB of events, fewer than the mailbox holds: the subscriber's write waits
				require.NoError(t, rc.HSet(ctx, fmt.Sprintf("%s%d", name, i), "f", "v").Err())
			}
			n, err := rc.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Int()
			require.NoError(t, err)
			require.Equal(t, 1, n)
			// Once it is gone (its subscription's goroutine has ended),
			// nothing more can count it.
			var info string
			require.Eventually(t, func() bool {
				info, err = rc.Info(ctx, "clients", "stats").Result()
				return err == nil && strings.Contains(info, "connected_clients:1\r\n")
			}, 10*time.Second, time.Millisecond)
			assert.Contains(t, info, "slow_subscribers_disconnected:0")
		})
	}
}

func mustListen(t *testing.T) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	return ln
}
