package resp

import (
	"context"
	"errors"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/internal/store"
)

// failingDelete is a registry whose DeleteManyNoWait fails at one name
// with an error other than ErrNotFound, having deleted the names before.
type failingDelete struct {
	Registry
	bad string
}

func (f failingDelete) DeleteManyNoWait(ctx context.Context, names []string) (int, []bucket.Pending, error) {
	if i := slices.Index(names, f.bad); i >= 0 {
		n, drops, _ := f.Registry.DeleteManyNoWait(ctx, names[:i])
		return n, drops, errors.New("injected: cannot delete")
	}
	return f.Registry.DeleteManyNoWait(ctx, names)
}

// A DEL that fails at one key still waits for the drops of the keys before
// it: a drop the disk loses then lists its key again, as after any lost
// drop, in memory as after a restart.
func TestDurableDelThatFailsStillWaitsForItsDrops(t *testing.T) {
	ctx := context.Background()
	faults := &store.Faults{}
	dir := t.TempDir()
	ds := startDurable(t, dir, faultyAlways(faults),
		func(cfg *Config) { cfg.Registry = failingDelete{Registry: cfg.Registry, bad: "bad"} })
	rc := ds.client(t)
	require.NoError(t, rc.HSet(ctx, "a", "f", "a").Err())

	faults.FailSyncs(syscall.EIO)
	cmds, _ := rc.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, "a", "bad")
		p.Ping(ctx)
		return nil
	})
	require.Len(t, cmds, 2)
	require.Error(t, cmds[0].Err())
	assert.Equal(t, "PONG", cmds[1].(*redis.StatusCmd).Val(), "one reply for the DEL")
	faults.Clear()
	require.Eventually(t, func() bool { return rc.HSet(ctx, "probe", "f", "v").Err() == nil }, 10*time.Second, time.Millisecond)

	assert.ElementsMatch(t, []string{"a", "probe"}, rc.Keys(ctx, "*").Val(), "a's drop was lost: a is stored, and listed")
	assert.Equal(t, "a", rc.HGet(ctx, "a", "f").Val())
	ds.stop()
	ds = startDurable(t, dir, store.Options{})
	assert.ElementsMatch(t, []string{"a", "probe"}, ds.client(t).Keys(ctx, "*").Val())
}
