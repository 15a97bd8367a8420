package resp

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/internal/store"
)

// RENAMENX answers as Redis 7 does (checked against redis-server 7.0.15):
// 1 and the key moved when the new name is free, 0 and nothing changed when
// it exists (the same name included), ERR no such key for a missing
// source; pipelined and in a transaction, in memory and with a store,
// where the move outlives a restart.
func TestRenameNX(t *testing.T) {
	for _, durable := range []bool{false, true} {
		name := "in memory"
		if durable {
			name = "durable"
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			var rc *redis.Client
			var ds *durableServer
			if durable {
				ds = startDurable(t, dir, store.Options{})
				rc = ds.client(t)
			} else {
				rc = start(t, Config{}).client(t)
			}
			require.NoError(t, rc.HSet(ctx, "a", "f", "a").Err())
			require.NoError(t, rc.HSet(ctx, "b", "f", "b").Err())

			assert.Equal(t, false, rc.RenameNX(ctx, "a", "b").Val(), "b exists")
			assert.Equal(t, false, rc.RenameNX(ctx, "a", "a").Val(), "the same name")
			assert.EqualError(t, rc.RenameNX(ctx, "nope", "c").Err(), "ERR no such key")
			assert.EqualError(t, rc.RenameNX(ctx, "nope", "nope").Err(), "ERR no such key")
			assert.Equal(t, map[string]string{"f": "a"}, rc.HGetAll(ctx, "a").Val())
			assert.Equal(t, map[string]string{"f": "b"}, rc.HGetAll(ctx, "b").Val())

			assert.Equal(t, true, rc.RenameNX(ctx, "a", "c").Val())
			assert.Equal(t, int64(0), rc.Exists(ctx, "a").Val())
			assert.Equal(t, map[string]string{"f": "a"}, rc.HGetAll(ctx, "c").Val())

			cmds, err := rc.Pipelined(ctx, func(p redis.Pipeliner) error {
				p.HSet(ctx, "c", "g", "pipelined")
				p.RenameNX(ctx, "c", "d")
				p.RenameNX(ctx, "b", "d")
				p.HSet(ctx, "d", "h", "after")
				return nil
			})
			require.NoError(t, err)
			assert.Equal(t, true, cmds[1].(*redis.BoolCmd).Val())
			assert.Equal(t, false, cmds[2].(*redis.BoolCmd).Val())

			cmds, err = rc.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.RenameNX(ctx, "b", "e")
				p.RenameNX(ctx, "d", "e")
				return nil
			})
			require.NoError(t, err)
			assert.Equal(t, true, cmds[0].(*redis.BoolCmd).Val())
			assert.Equal(t, false, cmds[1].(*redis.BoolCmd).Val())

			check := func(rc *redis.Client) {
				t.Helper()
				assert.ElementsMatch(t, []string{"d", "e"}, rc.Keys(ctx, "*").Val())
				assert.Equal(t, map[string]string{"f": "a", "g": "pipelined", "h": "after"}, rc.HGetAll(ctx, "d").Val())
				assert.Equal(t, map[string]string{"f": "b"}, rc.HGetAll(ctx, "e").Val())
			}
			check(rc)
			if durable {
				ds.stop()
				check(startDurable(t, dir, store.Options{}).client(t))
			}
		})
	}
}
