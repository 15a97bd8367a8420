//go:build linux

package resp

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/internal/store"
)

// The write of a client whose replies wait for its socket (it does not
// read them) is waited for at once, as every other client's: not left
// until its socket takes the reply. The store, after a failed sync,
// recovers only once every write in flight has been answered: the event
// loop kept such a client's write unanswered until its socket took the
// replies before it, or until WriteTimeout closed it, and meanwhile every
// write of every client failed. (Other clients also read the write from
// memory while it had not been committed.)
func TestDurableWriteOfAClientThatDoesNotReadDoesNotHoldTheStoreBack(t *testing.T) {
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			ctx := context.Background()
			faults := &store.Faults{}
			ds := startDurable(t, t.TempDir(), faultyAlways(faults),
				func(c *Config) {
					c.GoroutinePerClient = c.GoroutinePerClient || mode.goroutinePerClient
					c.Listener = smallSendBuffers{c.Listener}
					c.WriteTimeout = time.Minute // longer than the test waits
				})
			rc := ds.client(t)
			require.NoError(t, rc.HSet(ctx, "big", "f", strings.Repeat("v", 64<<10)).Err())

			// 4 MiB of replies fill the client's socket; once nothing
			// more of them comes, an HSET runs while they wait.
			nc := dialSmallReceiveBuffer(t, ds.addr, 16<<10)
			_, err := nc.Write([]byte(strings.Repeat("HGET big f\r\n", 64)))
			require.NoError(t, err)
			last, since := -1, time.Now()
			require.Eventually(t, func() bool {
				if n := unreadBytes(t, nc); n != last {
					last, since = n, time.Now()
					return false
				}
				return last > 0 && time.Since(since) >= 200*time.Millisecond
			}, 10*time.Second, 10*time.Millisecond, "the replies fill the client's socket")
			_, err = nc.Write([]byte("HSET a f 1\r\n"))
			require.NoError(t, err)
			require.Eventually(t, func() bool { return rc.HGet(ctx, "a", "f").Val() == "1" }, 10*time.Second, time.Millisecond,
				"the HSET behind the replies ran")

			faults.FailSyncs(syscall.EIO)
			require.Error(t, rc.HSet(ctx, "b", "f", "1").Err(), "a sync fails")
			faults.Clear()
			require.Eventually(t, func() bool { return rc.HSet(ctx, "b", "f", "2").Err() == nil }, 10*time.Second, time.Millisecond,
				"the store recovers while the client that does not read is connected")
			require.NoError(t, nc.Close())
		})
	}
}
