//go:build linux

package resp

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/internal/store"
)

// A subscriber that does not read its socket, and sends UNSUBSCRIBE with
// a reply too large for the socket, waits in that write for up to
// WriteTimeout: it must not hold the transactions' lock meanwhile, or an
// EXEC waits for it, and every other client behind the EXEC (Go's
// RWMutex lets no reader in while a writer waits): the whole server
// stalls for WriteTimeout.
func TestSlowSubscriberDoesNotHoldTransactionsBack(t *testing.T) {
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			ts := start(t, Config{GoroutinePerClient: mode.goroutinePerClient, WriteTimeout: time.Minute})
			nc := dialSmallReceiveBuffer(t, ts.addr, 4096)
			rd := bufio.NewReaderSize(nc, 1<<20)
			// 128 channels of 64 KiB: UNSUBSCRIBE's reply is 8 MiB, more
			// than the sockets hold.
			const chunk, chunks, nameLen = 16, 8, 64 << 10
			for i := range chunks {
				var b strings.Builder
				fmt.Fprintf(&b, "*%d\r\n$9\r\nSUBSCRIBE\r\n", chunk+1)
				for j := range chunk {
					name := fmt.Sprintf("%04d", i*chunk+j) + strings.Repeat("x", nameLen-4)
					fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(name), name)
				}
				_, err := nc.Write([]byte(b.String()))
				require.NoError(t, err)
				require.NoError(t, nc.SetReadDeadline(time.Now().Add(10*time.Second)))
				for range chunk * 6 { // *3, $9, subscribe, $n, name, :count
					_, err := rd.ReadString('\n')
					require.NoError(t, err)
				}
			}
			_, err := nc.Write([]byte("UNSUBSCRIBE\r\n")) // and nothing read from now on
			require.NoError(t, err)
			// Its reply is on its way, and stuck: the socket holds a few KiB
			// of 8 MiB.
			require.Eventually(t, func() bool { return unreadBytes(t, nc) > 0 }, 10*time.Second, time.Millisecond)

			// An EXEC and another client's command are not held back for
			// the subscriber's WriteTimeout (a minute).
			requireNotHeldBack(t, ts, "the subscriber")
		})
	}
}

// requireNotHeldBack requires that an EXEC and another client's PING are
// served within 10 seconds while stuck (a client whose socket is full)
// waits for its WriteTimeout.
func requireNotHeldBack(t *testing.T, ts *testServer, stuck string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	quick := func(o *redis.Options) { o.ContextTimeoutEnabled = true }
	writer, other := ts.client(t, quick), ts.client(t, quick)
	_, err := writer.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HIncrBy(ctx, "c", "n", 1)
		return nil
	})
	require.NoError(t, err, "EXEC waited for %s's socket", stuck)
	require.NoError(t, other.Ping(ctx).Err(), "another client is held back by %s", stuck)
}

// stalledLoop is a durable server (--fsync always) for the tests that show
// that the event loop does not hold the transactions' lock while it waits
// for the disk: own is a client moved to a goroutine of its own (by SAVE),
// whose EXEC would wait for that lock, and bucket "read" holds f=1.
type stalledLoop struct {
	*durableServer
	faults *store.Faults
	rc     *redis.Client
	own    *raw
}

func startStalledLoop(t *testing.T, configure ...func(*Config)) *stalledLoop {
	t.Helper()
	if goroutinePerClient {
		t.Skip("no event loop")
	}
	faults := &store.Faults{}
	ds := startDurable(t, t.TempDir(), faultyAlways(faults), configure...)
	rc := ds.client(t)
	require.NoError(t, rc.HSet(context.Background(), "read", "f", "1").Err())
	own := ds.raw(t)
	own.send("SAVE\r\n") // moves the client to a goroutine of its own
	own.expect("+OK")
	return &stalledLoop{durableServer: ds, faults: faults, rc: rc, own: own}
}

// awaitInMemory waits until field f of key is in memory: the loop has run
// the write, whose reply waits for the stalled disk.
func (s *stalledLoop) awaitInMemory(t *testing.T, key string) {
	t.Helper()
	require.Eventually(t, func() bool {
		s.own.send("HEXISTS " + key + " f\r\n")
		return s.own.line() == ":1"
	}, 10*time.Second, time.Millisecond)
}

// awaitLoopOnDisk waits until the loop's goroutine waits for the disk.
func awaitLoopOnDisk(t *testing.T) {
	t.Helper()
	require.Eventually(t, func() bool {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		return strings.Contains(stacks, "resp.(*conn).settle") && strings.Contains(stacks, "resp.(*loop).run")
	}, 10*time.Second, time.Millisecond, "the loop waits for the disk")
}

// execReads runs a transaction that only reads on own: it must not wait
// for the disk.
func (s *stalledLoop) execReads() {
	s.own.send("MULTI\r\nHGET read f\r\nEXEC\r\n")
	s.own.expect("+OK", "+QUEUED", "*1", "$1", "1")
}

// The event loop does not hold the transactions' lock while it waits for
// the disk to answer its clients' writes: an EXEC of a client on a
// goroutine of its own, which reads only, is not held back by a hung disk
// (it waited for the disk before, and with it every client behind it).
func TestLoopWaitingForTheDiskDoesNotHoldExecBack(t *testing.T) {
	s := startStalledLoop(t)
	resume := s.faults.Stall()
	defer resume()
	writer := s.raw(t)
	writer.send("HSET w f 1\r\n") // the loop waits for the disk to answer it
	s.awaitInMemory(t, "w")

	s.execReads()

	resume()
	writer.expect(":1")
}

// Nor while it waits for the disk to answer the writes of a client whose
// replies wait for its socket (blocked): when the socket takes them
// again, the loop waits for the disk before it writes them, and did so
// under the lock, holding every EXEC, and every client of every front end
// behind it, until the disk answered.
func TestLoopWaitingForTheDiskForABlockedClientDoesNotHoldExecBack(t *testing.T) {
	ctx := context.Background()
	s := startStalledLoop(t, func(c *Config) { c.Listener = smallSendBuffers{c.Listener} })
	value := strings.Repeat("v", 64<<10)
	require.NoError(t, s.rc.HSet(ctx, "h", "big", value).Err())

	// 4 MiB of replies, more than the sockets hold: the client is blocked.
	writer := dialSmallReceiveBuffer(t, s.addr, 4096)
	_, err := writer.Write([]byte(strings.Repeat("HGET h big\r\n", 64) + "HINCRBY c ran 1\r\n"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return s.rc.HGet(ctx, "c", "ran").Val() == "1" }, 10*time.Second, time.Millisecond)

	resume := s.faults.Stall()
	defer resume()
	_, err = writer.Write([]byte("HSET w f 1\r\n")) // run, its reply waits behind the others
	require.NoError(t, err)
	s.awaitInMemory(t, "w")
	// The client reads: its socket takes replies again, and the loop waits
	// for the disk before it writes them.
	require.NoError(t, writer.SetReadDeadline(time.Now().Add(10*time.Second)))
	_, err = io.ReadFull(writer, make([]byte, 16<<10))
	require.NoError(t, err)
	awaitLoopOnDisk(t)

	s.execReads()
}

// Nor while it waits for the writes of a client whose command panicked:
// the client is closed once its pending writes are waited for, and the
// loop did that under the lock, in serveSurviving, holding every EXEC
// (and every client of every front end behind it) until the disk answered.
func TestLoopClosingAPanickedClientDoesNotHoldExecBack(t *testing.T) {
	s := startStalledLoop(t, func(c *Config) {
		c.Logger = slog.New(new(panics))
		c.testHookLive = panicsOn("boom")
	})
	require.NoError(t, s.rc.HSet(context.Background(), "boom", "f", "1").Err(), "HSET of a missing key looks nothing up")

	resume := s.faults.Stall()
	defer resume()
	crash := s.raw(t)
	crash.send("HSET w f 1\r\nHGET boom f\r\n") // a write, then a panic: closed once the write is waited for
	s.awaitInMemory(t, "w")
	awaitLoopOnDisk(t)

	s.execReads()
	resume()
	require.True(t, crash.closed(), "the panicking client is closed")
}
