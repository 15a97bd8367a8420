package resp

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// HSET of several pairs and HDEL of several fields are atomic: a reader
// sees all of a write or none of it, never a field of it without the
// other. Writers set fields a and b to one value, or delete both; readers
// must always find them equal, or both absent. With a goroutine per
// client, where commands run in parallel (the event loop runs one at a
// time, and would hide a write split in two).
func TestMultiFieldWritesAreAtomic(t *testing.T) {
	ts := start(t, Config{GoroutinePerClient: true})
	ctx := context.Background()
	const writes = 1000
	var wg sync.WaitGroup
	var done atomic.Bool
	for w := range 2 {
		wg.Go(func() {
			rc := ts.client(t)
			for i := range writes {
				v := fmt.Sprint(w*writes + i)
				if i%5 == 4 {
					assert.NoError(t, rc.HDel(ctx, "h", "a", "b").Err())
				} else {
					assert.NoError(t, rc.HSet(ctx, "h", "a", v, "b", v).Err())
				}
			}
		})
	}
	var reads atomic.Int64
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			rc := ts.client(t)
			for !done.Load() {
				got, err := rc.HMGet(ctx, "h", "a", "b").Result()
				if err != nil {
					assert.NoError(t, err)
					return
				}
				assert.Equal(t, got[0], got[1], "HMGET h a b after a partial write")
				all, err := rc.HGetAll(ctx, "h").Result()
				if err != nil {
					assert.NoError(t, err)
					return
				}
				assert.Equal(t, all["a"], all["b"], "HGETALL after a partial write")
				reads.Add(1)
			}
		})
	}
	wg.Wait()
	done.Store(true)
	readers.Wait()
	assert.Positive(t, reads.Load())
}

// countingConn counts the reads that brought bytes and the writes of a
// connection.
type countingConn struct {
	net.Conn
	reads, writes *atomic.Int64
}

func (c countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.reads.Add(1)
	}
	return n, err
}

func (c countingConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

type countingListener struct {
	net.Listener
	reads, writes *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{nc, l.reads, l.writes}, nil
}

// The replies to the commands of one read leave in one write, not one
// write per command (with a goroutine per client, whose writes go through
// the net.Conn; the event loop too writes a turn's replies at once).
func TestPipelineRepliesLeaveInOneWrite(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var reads, writes atomic.Int64
	ts := start(t, Config{Listener: countingListener{ln, &reads, &writes}, GoroutinePerClient: true})
	r := ts.raw(t)
	const n = 50
	r.send(strings.Repeat("HSET h f v\r\nHGET h f\r\nPING\r\n", n))
	for i := range n {
		want := ":0"
		if i == 0 {
			want = ":1"
		}
		require.Equal(t, want, r.line())
		require.Equal(t, "$1", r.line())
		require.Equal(t, "v", r.line())
		require.Equal(t, "+PONG", r.line())
	}
	assert.Positive(t, writes.Load())
	assert.LessOrEqual(t, writes.Load(), reads.Load(), "%d commands read in %d reads", 3*n, reads.Load())
}

// HGET of a present field allocates nothing: the value is copied from the
// bucket straight into the reply buffer.
func TestHGetDoesNotAllocate(t *testing.T) {
	s, ctx := commandLayer(t, Config{})
	c := newConn(s, discardConn{})
	defer c.close()
	c.do(ctx, [][]byte{[]byte("HSET"), []byte("h"), []byte("f"), []byte("value")})
	hget := [][]byte{[]byte("HGET"), []byte("h"), []byte("f")}
	c.out = c.out[:0]
	c.do(ctx, hget)
	require.Equal(t, "$5\r\nvalue\r\n", string(c.out))
	allocs := testing.AllocsPerRun(100, func() {
		c.out = c.out[:0]
		c.do(ctx, hget)
	})
	assert.Zero(t, allocs)
}
