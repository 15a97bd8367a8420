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

// RANDOMKEY gives every key a fair chance, as Redis's does: keys named
// alike (k0..k9, user:0..user:99) have FNV-1a scan hashes packed in a
// narrow band, and the first key after a random scan cursor was nearly
// always the one after the band's gap (k8 1000 times in 1000; 3 keys of
// 100 in 2000 picks). Redis 7.0.15 returned all 10 and all 100.
func TestRandomKeyIsFair(t *testing.T) {
	ctx := context.Background()
	check := func(t *testing.T, rc *redis.Client, n, picks int) {
		t.Helper()
		seen := map[string]int{}
		for range picks {
			k, err := rc.RandomKey(ctx).Result()
			require.NoError(t, err)
			seen[k]++
		}
		assert.Len(t, seen, n, "every key is picked in %d picks of %d keys: %v", picks, n, seen)
	}
	fill := func(t *testing.T, rc *redis.Client, format string, n int) {
		for i := range n {
			require.NoError(t, rc.HSet(ctx, fmt.Sprintf(format, i), "f", "v").Err())
		}
	}
	t.Run("in memory", func(t *testing.T) {
		ts := start(t, Config{})
		rc := ts.client(t)
		fill(t, rc, "k%d", 10)
		check(t, rc, 10, 1000)
		fill(t, rc, "user:%d", 100)
		check(t, rc, 110, 10000)
	})
	t.Run("durable, after a restart", func(t *testing.T) {
		dir := t.TempDir()
		ds := startDurable(t, dir, store.Options{})
		fill(t, ds.client(t), "k%d", 10)
		check(t, ds.client(t), 10, 1000)
		ds.stop()
		ds = startDurable(t, dir, store.Options{})
		check(t, ds.client(t), 10, 1000)
	})
}
