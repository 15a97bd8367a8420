package resp

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/bucket"
)

// lockedBuffer is a bytes.Buffer for a logger that goroutines share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A command whose handler panics (a bug) ends its own client, logged with
// the stack, and nothing else: the other clients carry on, the
// transactions' lock is free (an EXEC runs), inside a transaction too,
// and the server stops cleanly. Before, the panic ended the daemon.
func TestPanickingCommandEndsOnlyItsClient(t *testing.T) {
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			var logs lockedBuffer
			ts := start(t, Config{
				GoroutinePerClient: mode.goroutinePerClient,
				Logger:             slog.New(slog.NewTextHandler(&logs, nil)),
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
