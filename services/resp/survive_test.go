package resp

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

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
				testHookLive: func(b *bucket.Bucket) {
					if b.Name() == "boom" {
						panic("handler bug")
					}
				},
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
