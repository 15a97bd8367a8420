package resp

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPipelineWrittenWholeBeforeItsRepliesAreRead checks a pipeline as
// client libraries send it: go-redis's Pipelined (and redis-py's
// pipeline().execute()) write every command, and only then read the
// replies. When both the commands and the replies outgrow the sockets'
// buffers, the server must go on reading while its replies wait, as Redis
// does (it keeps running the commands and holds their replies):
// otherwise the client waits to write, the server waits for the client to
// read, and after WriteTimeout the server closes a client that did
// nothing wrong. 24 MiB each way here; Redis answers it in about a second.
func TestPipelineWrittenWholeBeforeItsRepliesAreRead(t *testing.T) {
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			ts := start(t, Config{GoroutinePerClient: mode.goroutinePerClient, WriteTimeout: 10 * time.Second})
			rc := ts.client(t, func(o *redis.Options) {
				o.ReadTimeout, o.WriteTimeout = 20*time.Second, 20*time.Second
			})
			ctx := context.Background()
			value := strings.Repeat("v", 4096)
			require.NoError(t, rc.HSet(ctx, "h", "f", value).Err())
			const n = 6000 // 6,000 x 4 KiB: 24 MiB of commands, 24 MiB of replies
			cmds, err := rc.Pipelined(ctx, func(p redis.Pipeliner) error {
				for i := range n {
					p.HSet(ctx, "h", fmt.Sprint("g", i%10), value)
					p.HGet(ctx, "h", "f")
				}
				return nil
			})
			require.NoError(t, err)
			require.Len(t, cmds, 2*n)
			for i := 1; i < len(cmds); i += 2 {
				if !assert.Equal(t, value, cmds[i].(*redis.StringCmd).Val(), "reply %d", i) {
					break
				}
			}
		})
	}
}

// TestRepliesWaitingForAClientAreBounded: while a client does not read,
// the server runs its pipeline on only until MaxReplyBytes of replies
// wait (and the sockets' buffers are full), then reads nothing more from
// it; once the client reads, the rest runs, in order, and every reply
// arrives.
func TestRepliesWaitingForAClientAreBounded(t *testing.T) {
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			ts, rc, value := startWithBigValue(t, Config{GoroutinePerClient: mode.goroutinePerClient, MaxReplyBytes: 1 << 20})

			// 2,000 commands of 64 KiB replies (125 MiB), each followed by
			// an increment that counts it: about 140 KB of requests, which
			// the sockets take whole.
			const n = 2000
			pipe := ts.raw(t)
			var req strings.Builder
			for range n {
				req.WriteString("HGET h big\r\nHINCRBY c ran 1\r\n")
			}
			pipe.send(req.String())
			// Wait until the count stands still: held back, with the
			// replies of at most 1 MiB plus the sockets' buffers (a few
			// MiB on loopback) waiting, of 125 MiB.
			last := countWhenStill(t, rc, "c", "ran")
			assert.Less(t, last, int64(n/2), "commands run while their replies wait")

			for i := range n {
				require.Equal(t, fmt.Sprintf("$%d", len(value)), pipe.line(), "reply %d", i)
				require.Equal(t, value, pipe.line())
				require.Equal(t, fmt.Sprintf(":%d", i+1), pipe.line())
			}
			assert.Equal(t, int64(n), countWhenStill(t, rc, "c", "ran"))
		})
	}
}

// TestPipelineThenEndOfInput: a client that sends a pipeline and then
// shuts its side of the connection (as nc does at the end of its input)
// gets every reply, even those that waited for its socket, and then the
// end of the stream; past MaxReplyBytes too, where the commands held back
// meanwhile still run once it reads, though it will send nothing more.
func TestPipelineThenEndOfInput(t *testing.T) {
	for _, tc := range []struct {
		name          string
		maxReplyBytes int
		pause         time.Duration // before each reply is read: replies wait while the end comes
	}{
		{"within MaxReplyBytes", 0, 0},
		{"past MaxReplyBytes", 4 << 20, time.Millisecond},
	} {
		for _, mode := range servingModes {
			t.Run(tc.name+"/"+mode.name, func(t *testing.T) {
				ts, _, value := startWithBigValue(t, Config{GoroutinePerClient: mode.goroutinePerClient, MaxReplyBytes: tc.maxReplyBytes})

				const n = 400 // 25 MiB of replies: more than the sockets hold
				pipe := ts.raw(t)
				pipe.send(strings.Repeat("HGET h big\r\n", n))
				require.NoError(t, pipe.nc.(*net.TCPConn).CloseWrite())
				for i := range n {
					time.Sleep(tc.pause)
					require.Equal(t, fmt.Sprintf("$%d", len(value)), pipe.line(), "reply %d", i)
					require.Equal(t, value, pipe.line())
				}
				assert.True(t, pipe.closed(), "closed once its replies are out")
			})
		}
	}
}

// TestPipelineWithSubscribeWhileRepliesWait: a command that needs a
// goroutine of its own (SUBSCRIBE) reached while the client's replies
// wait for its socket waits for them in the client's buffer; what the
// client sends after it is not read meanwhile (it would pile up behind it,
// past MaxRequestBytes), and every reply comes, in order.
func TestPipelineWithSubscribeWhileRepliesWait(t *testing.T) {
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			ts, _, value := startWithBigValue(t, Config{GoroutinePerClient: mode.goroutinePerClient, MaxRequestBytes: 1 << 20})

			const n, pings = 200, 4096 // 12.5 MiB of replies, then 4 MiB of requests
			payload := strings.Repeat("p", 1024)
			pipe := ts.raw(t)
			sent := make(chan error, 1)
			go func() {
				var req strings.Builder
				for range n {
					req.WriteString("HGET h big\r\n")
				}
				req.WriteString("SUBSCRIBE ch\r\n")
				for range pings {
					req.WriteString("PING " + payload + "\r\n")
				}
				_, err := pipe.nc.Write([]byte(req.String()))
				sent <- err
			}()
			time.Sleep(500 * time.Millisecond) // the replies wait meanwhile
			for i := range n {
				require.Equal(t, fmt.Sprintf("$%d", len(value)), pipe.line(), "reply %d", i)
				require.Equal(t, value, pipe.line())
			}
			for _, l := range []string{"*3", "$9", "subscribe", "$2", "ch", ":1"} {
				require.Equal(t, l, pipe.line())
			}
			for i := range pings {
				require.Equal(t, "*2", pipe.line(), "pong %d", i)
				require.Equal(t, "$4", pipe.line())
				require.Equal(t, "pong", pipe.line())
				require.Equal(t, "$1024", pipe.line())
				require.Equal(t, payload, pipe.line())
			}
			require.NoError(t, <-sent)
		})
	}
}

// TestRepliesTakenWhileMoreRunStayBounded: a client that sends on and
// reads on, slower than its replies come, keeps the server's replies
// waiting for it the whole time; the memory they take stays within
// MaxReplyBytes (and the sockets' buffers), not all the replies since they
// began to wait.
func TestRepliesTakenWhileMoreRunStayBounded(t *testing.T) {
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			ts, _, value := startWithBigValue(t, Config{GoroutinePerClient: mode.goroutinePerClient, MaxReplyBytes: 4 << 20})

			const n = 2000 // 125 MiB of replies
			pipe := ts.raw(t)
			sent := make(chan error, 1)
			go func() {
				for range n / 10 {
					if _, err := pipe.nc.Write([]byte(strings.Repeat("HGET h big\r\n", 10))); err != nil {
						sent <- err
						return
					}
					time.Sleep(10 * time.Millisecond) // on while replies are read
				}
				sent <- nil
			}()
			var ms runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms)
			base, peak := ms.HeapAlloc, ms.HeapAlloc
			for i := range n {
				if i%10 == 0 {
					runtime.ReadMemStats(&ms)
					peak = max(peak, ms.HeapAlloc)
					time.Sleep(15 * time.Millisecond) // slower than the requests come
				}
				require.Equal(t, fmt.Sprintf("$%d", len(value)), pipe.line(), "reply %d", i)
				require.Equal(t, value, pipe.line())
			}
			require.NoError(t, <-sent)
			assert.Less(t, peak-base, uint64(64<<20), "the heap grew by %d MiB", (peak-base)>>20)
		})
	}
}

// startWithBigValue starts a server with cfg and stores a 64 KiB value in
// field big of hash h: the reply these tests make a client wait for.
func startWithBigValue(t *testing.T, cfg Config) (*testServer, *redis.Client, string) {
	t.Helper()
	ts := start(t, cfg)
	rc := ts.client(t)
	value := strings.Repeat("v", 64<<10)
	require.NoError(t, rc.HSet(context.Background(), "h", "big", value).Err())
	return ts, rc, value
}

// TestPipelineBacklogIsNotARequestTooLarge: a client that sends a long
// pipeline of small commands whose replies are large, and reads them
// while it sends, keeps the event loop at MaxReplyBytes: the loop runs
// its commands only as their replies leave. The complete commands it has
// read and not run yet are not one request too large (64 KiB for inline
// commands, MaxRequestBytes for the others): the loop read on while they
// waited, and then closed the client with "too big inline request" or
// "request too large", where Redis (and a goroutine per client) answer
// them all.
func TestPipelineBacklogIsNotARequestTooLarge(t *testing.T) {
	for _, inline := range []bool{true, false} {
		for _, mode := range servingModes {
			t.Run(fmt.Sprintf("inline=%v/%s", inline, mode.name), func(t *testing.T) {
				ts := start(t, Config{GoroutinePerClient: mode.goroutinePerClient, MaxReplyBytes: 16 << 10, MaxRequestBytes: 64 << 10})
				value := strings.Repeat("v", 4<<10)
				require.NoError(t, ts.client(t).HSet(context.Background(), "h", "f", value).Err())
				cmd := "HGET h f\r\n"
				if !inline {
					cmd = "*3\r\n$4\r\nHGET\r\n$1\r\nh\r\n$1\r\nf\r\n"
				}
				const n = 20000 // 200 or 540 KB of commands, 80 MiB of replies
				pipe := ts.raw(t)
				sent := make(chan error, 1)
				go func() {
					_, err := pipe.nc.Write([]byte(strings.Repeat(cmd, n)))
					sent <- err
				}()
				for i := range n {
					require.Equal(t, fmt.Sprintf("$%d", len(value)), pipe.line(), "reply %d", i)
					require.Equal(t, value, pipe.line())
				}
				require.NoError(t, <-sent)
			})
		}
	}
}

// The replies kept for a client that does not read are each copied once:
// they were appended to one buffer (the event loop's, or a goroutine's
// write queue), which copied every reply before at each growth (about 5
// times their size in all); on the loop, every other client waited
// meanwhile: 64 replies of 1 MiB, not read, held them 0.4 to 1.7 s.
func TestRepliesKeptForAClientThatDoesNotReadAreCopiedOnce(t *testing.T) {
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			ts := start(t, Config{GoroutinePerClient: mode.goroutinePerClient, WriteTimeout: time.Minute})
			rc := ts.client(t)
			ctx := context.Background()
			require.NoError(t, rc.HSet(ctx, "big", "f", strings.Repeat("x", 1<<20)).Err())
			stuck := ts.raw(t)
			const n = 48 // MiB of replies, far more than the sockets' buffers take
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			stuck.send(strings.Repeat("HGET big f\r\n", n) + "HSET done f 1\r\n")
			// Polled every 10 ms: the polls' own allocations stay far
			// below the margin even on a slow machine.
			require.Eventually(t, func() bool { return rc.Exists(ctx, "done").Val() == 1 }, 20*time.Second, 10*time.Millisecond,
				"a blocked client's commands run on")
			runtime.ReadMemStats(&after)
			assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(2*n<<20), "bytes allocated for %d MiB of replies", n)
		})
	}
}

// TestWriteQueueReleasedOnceWritten: on a goroutine of its own, the
// replies a client's socket could not take wait in its write queue, up to
// MaxReplyBytes; once they are written, a queue that grew large leaves
// memory, as the reply buffer does. Kept, every client that once had a
// long pipeline's replies wait held up to MaxReplyBytes for as long as it
// stayed connected.
func TestWriteQueueReleasedOnceWritten(t *testing.T) {
	ts, _, value := startWithBigValue(t, Config{GoroutinePerClient: true})
	const n = 200 // 12.5 MiB of replies: more than the sockets hold
	pipe := ts.raw(t)
	pipe.send(strings.Repeat("HGET h big\r\n", n))
	var c *conn
	require.Eventually(t, func() bool {
		for _, o := range ts.srv.clients() {
			o.wq.mu.Lock()
			queued := len(o.wq.buf) > 0
			o.wq.mu.Unlock()
			if queued {
				c = o
				return true
			}
		}
		return false
	}, 10*time.Second, time.Millisecond, "replies wait in the write queue")
	for i := range n {
		require.Equal(t, fmt.Sprintf("$%d", len(value)), pipe.line(), "reply %d", i)
		require.Equal(t, value, pipe.line())
	}
	require.Eventually(t, func() bool {
		c.wq.mu.Lock()
		defer c.wq.mu.Unlock()
		return !c.wq.active
	}, 10*time.Second, time.Millisecond)
	c.wq.mu.Lock()
	defer c.wq.mu.Unlock()
	assert.Nil(t, c.wq.buf, "the write queue keeps replies written")
	assert.Zero(t, c.wq.queued)
}

// countWhenStill waits until the integer in field of hash key (a count of
// the commands a held-back client ran) has stood still, above 0, for 200
// ms, and returns it.
func countWhenStill(t *testing.T, rc *redis.Client, key, field string) int64 {
	t.Helper()
	ran := func() int64 {
		v, err := rc.HGet(context.Background(), key, field).Int64()
		if err == redis.Nil {
			return 0
		}
		require.NoError(t, err)
		return v
	}
	last, since := int64(-1), time.Now()
	require.Eventually(t, func() bool {
		if v := ran(); v != last {
			last, since = v, time.Now()
			return false
		}
		return last > 0 && time.Since(since) >= 200*time.Millisecond
	}, 60*time.Second, 10*time.Millisecond)
	return last
}
