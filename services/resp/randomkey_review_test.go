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

// RANDOMKEY gives every key a fair chance, as Redis's does: keys named
// alike (k0..k9, user:0..user:99) have FNV-1a scan hashes packed in a
// narrow band, and the first key after a random scan cursor was nearly
// always the one after the band's gap (k8 1000 times in 1000; 3 keys of
// 100 in 2000 picks). Redis 7.0.15 returned all 10 and all 100.
func TestReviewRandomKeyIsFair(t *testing.T) {
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
