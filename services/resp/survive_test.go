package resp

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/bucket"
)

// panics is a log handler that keeps the records of commands that
// panicked (see Server.survive), with their attributes, and drops the
// rest.
type panics struct {
	mu   sync.Mutex
	seen []string
}

func (p *panics) Enabled(context.Context, slog.Level) bool { return true }
func (p *panics) WithAttrs([]slog.Attr) slog.Handler       { return p }
func (p *panics) WithGroup(string) slog.Handler            { return p }
func (p *panics) Handle(_ context.Context, r slog.Record) error {
	if !strings.Contains(r.Message, "a command panicked") {
		return nil
	}
	line := r.Message
	r.Attrs(func(a slog.Attr) bool {
		line += " " + a.String()
		return true
	})
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen = append(p.seen, line)
	return nil
}

// String returns the records kept, one a line.
func (p *panics) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.seen, "\n")
}

// take returns the records kept, one a line, and forgets them: a fuzz
// target reports a record once, not again at every later input.
func (p *panics) take() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	seen := strings.Join(p.seen, "\n")
	p.seen = nil
	return seen
}

// panicsOn returns a testHookLive that panics, as a bug in a handler
// would, in any command that looks up the bucket named name.
func panicsOn(name string) func(*bucket.Bucket) {
	return func(b *bucket.Bucket) {
		if b.Name() == name {
			panic("handler bug")
		}
	}
}

// A command whose handler panics (a bug) ends its own client, logged with
// the stack, and nothing else: the other clients carry on, the
// transactions' lock is free (an EXEC runs), inside a transaction too,
// and the server stops cleanly. Before, the panic ended the daemon.
func TestPanickingCommandEndsOnlyItsClient(t *testing.T) {
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			logs := new(panics)
			ts := start(t, Config{
				GoroutinePerClient: mode.goroutinePerClient,
				Logger:             slog.New(logs),
				testHookLive:       panicsOn("boom"),
			})
			ctx := context.Background()
			other := ts.client(t)
			require.NoError(t, other.HSet(ctx, "boom", "f", "1").Err(), "HSET of a missing key looks nothing up")
			require.NoError(t, other.HSet(ctx, "fine", "f", "1").Err())

			for _, send := range []string{"HGET boom f\r\n", "MULTI\r\nHGET boom f\r\nEXEC\r\n"} {
				r := ts.raw(t)
				r.send(send)
				assert.True(t, r.closed(), "the panicking client is closed")
				assert.Equal(t, "1", other.HGet(ctx, "fine", "f").Val(), "another client carries on")
				_, err := other.TxPipelined(ctx, func(p redis.Pipeliner) error {
					p.HIncrBy(ctx, "fine", "n", 1)
					return nil
				})
				require.NoError(t, err, "the transactions' lock is free")
			}
			assert.Contains(t, logs.String(), "a command panicked")
			assert.Contains(t, logs.String(), "handler bug")
		})
	}
}

// openAtLog is panics that also notes whether the panicking client's
// connection was already closed when its record came (one client only).
type openAtLog struct {
	panics
	srv         atomic.Pointer[Server]
	closedFirst atomic.Bool
}

func (h *openAtLog) Handle(ctx context.Context, r slog.Record) error {
	if s := h.srv.Load(); s != nil && strings.Contains(r.Message, "a command panicked") {
		for _, c := range s.clients() { // on the client's goroutine (or loop)
			if c.nc != nil && errors.Is(c.nc.SetReadDeadline(time.Time{}), net.ErrClosed) || c.nc == nil && c.fd < 0 {
				h.closedFirst.Store(true)
			}
		}
	}
	return h.panics.Handle(ctx, r)
}

// The record of a panicking command is written before its client is
// closed: the socket fuzzers read until the server closes, then look for
// it (see fuzzSocket). On a goroutine of its own, the client was closed
// first (serve's deferred close ran as the panic unwound, before
// Server.survive recovered and logged it), and a fuzzer could pass the
// input that panicked and fail a later one.
func TestPanicLoggedBeforeItsClientCloses(t *testing.T) {
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			logs := new(openAtLog)
			ts := start(t, Config{
				GoroutinePerClient: mode.goroutinePerClient,
				Logger:             slog.New(logs),
				testHookLive:       panicsOn("boom"),
			})
			logs.srv.Store(ts.srv)
			r := ts.raw(t)
			r.send("HSET boom f 1\r\n")
			r.expect(":1")
			r.send("HGET boom f\r\n")
			require.True(t, r.closed(), "the panicking client is closed")
			assert.Contains(t, logs.String(), "handler bug", "logged by the time its client is closed")
			assert.False(t, logs.closedFirst.Load(), "its client was closed before the panic was logged")
		})
	}
}
