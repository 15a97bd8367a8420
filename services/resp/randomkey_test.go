package resp

import (
	"context"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/internal/store"
)

// RANDOMKEY answers nil without keys, and otherwise a key that exists,
// not always the same one; with a store, also one stored and not loaded
// (after a restart). TOUCH counts the keys that exist, as EXISTS does.
func TestRandomKeyAndTouch(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	ds := startDurable(t, dir, store.Options{})
	rc := ds.client(t)
	_, err := rc.RandomKey(ctx).Result()
	require.ErrorIs(t, err, redis.Nil)

	keys := map[string]bool{}
	for i := range 50 {
		k := fmt.Sprintf("k%d", i)
		require.NoError(t, rc.HSet(ctx, k, "f", "v").Err())
		keys[k] = true
	}
	n, err := rc.Touch(ctx, "k1", "k1", "missing", "k2").Result()
	require.NoError(t, err)
	assert.Equal(t, int64(3), n, "as EXISTS: a key named twice counts twice")

	pick := func(rc *redis.Client) map[string]bool {
		seen := map[string]bool{}
		for range 2000 {
			k, err := rc.RandomKey(ctx).Result()
			require.NoError(t, err)
			require.True(t, keys[k], "%q is a key", k)
			seen[k] = true
		}
		return seen
	}
	assert.Greater(t, len(pick(rc)), 1, "not always the same key")

	ds.stop()
	ds = startDurable(t, dir, store.Options{})
	assert.Greater(t, len(pick(ds.client(t))), 1, "stored keys, none loaded yet")
}
