package resp

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/internal/store"
)

// A pipeline DEL x; HSET x whose commit is lost: both replies are errors,
// x keeps its old value, in memory (KEYS, HGET) as after a restart.
func TestDurableLostDelThenHSetKeepsTheKey(t *testing.T) {
	ctx := context.Background()
	faults := &store.Faults{}
	dir := t.TempDir()
	ds := startDurable(t, dir, faultyAlways(faults))
	rc := ds.client(t)
	require.NoError(t, rc.HSet(ctx, "x", "f", "old").Err())

	faults.FailSyncs(syscall.EIO)
	cmds, _ := rc.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, "x")
		p.HSet(ctx, "x", "f", "new")
		return nil
	})
	require.Len(t, cmds, 2)
	require.Error(t, cmds[0].Err())
	require.Error(t, cmds[1].Err())
	faults.Clear()
	require.Eventually(t, func() bool { return rc.HSet(ctx, "probe", "f", "v").Err() == nil }, 10*time.Second, time.Millisecond)

	assert.ElementsMatch(t, []string{"x", "probe"}, rc.Keys(ctx, "*").Val(), "neither write happened")
	assert.Equal(t, "old", rc.HGet(ctx, "x", "f").Val())
	ds.stop()
	ds = startDurable(t, dir, store.Options{})
	rc = ds.client(t)
	assert.ElementsMatch(t, []string{"x", "probe"}, rc.Keys(ctx, "*").Val())
	assert.Equal(t, "old", rc.HGet(ctx, "x", "f").Val())
}

// The other order: HSET of a new key and its DEL, lost together: no key.
func TestDurableLostHSetThenDelLeavesNoKey(t *testing.T) {
	ctx := context.Background()
	faults := &store.Faults{}
	ds := startDurable(t, t.TempDir(), faultyAlways(faults))
	rc := ds.client(t)

	faults.FailSyncs(syscall.EIO)
	cmds, _ := rc.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, "x", "f", "new")
		p.Del(ctx, "x")
		return nil
	})
	require.Len(t, cmds, 2)
	require.Error(t, cmds[0].Err())
	require.Error(t, cmds[1].Err())
	faults.Clear()
	require.Eventually(t, func() bool { return rc.HSet(ctx, "probe", "f", "v").Err() == nil }, 10*time.Second, time.Millisecond)

	assert.Equal(t, []string{"probe"}, rc.Keys(ctx, "*").Val())
	assert.Equal(t, int64(1), rc.DBSize(ctx).Val())
	assert.Equal(t, int64(0), rc.Del(ctx, "x").Val(), "nothing to delete")
}

// A transaction's DEL whose drop is lost: EXEC's replies are each the
// error of its own command, and nothing of the transaction is kept.
func TestDurableExecWithALostDel(t *testing.T) {
	ctx := context.Background()
	faults := &store.Faults{}
	dir := t.TempDir()
	ds := startDurable(t, dir, faultyAlways(faults))
	rc := ds.client(t)
	require.NoError(t, rc.HSet(ctx, "a", "f", "a").Err())
	require.NoError(t, rc.HSet(ctx, "b", "f", "b").Err())

	faults.FailSyncs(syscall.EIO)
	cmds, err := rc.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, "c", "f", "c")
		p.Del(ctx, "a", "b", "missing")
		p.Exists(ctx, "a")
		p.HSet(ctx, "a", "f", "new")
		return nil
	})
	require.Error(t, err)
	require.Len(t, cmds, 4)
	assert.Error(t, cmds[0].Err())
	assert.Error(t, cmds[1].Err())
	assert.Contains(t, cmds[1].Err().Error(), "write failed")
	assert.NoError(t, cmds[2].Err(), "a read")
	assert.Equal(t, int64(0), cmds[2].(*redis.IntCmd).Val())
	assert.Error(t, cmds[3].Err())
	faults.Clear()
	require.Eventually(t, func() bool { return rc.HSet(ctx, "probe", "f", "v").Err() == nil }, 10*time.Second, time.Millisecond)

	assert.ElementsMatch(t, []string{"a", "b", "probe"}, rc.Keys(ctx, "*").Val())
	assert.Equal(t, "a", rc.HGet(ctx, "a", "f").Val())
	ds.stop()
	ds = startDurable(t, dir, store.Options{})
	rc = ds.client(t)
	assert.ElementsMatch(t, []string{"a", "b", "probe"}, rc.Keys(ctx, "*").Val())
	assert.Equal(t, "a", rc.HGet(ctx, "a", "f").Val())
}
