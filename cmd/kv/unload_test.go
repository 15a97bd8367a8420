package main

import (
	"bytes"
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/services/resp"
)

// The daemon with --unload-idle: a hash no command uses is taken out of
// memory (its subscribers see it exit, idle), stays listed, and its next
// use brings it back whole (created again); one used all along stays.
func TestDaemonUnloadsIdleBuckets(t *testing.T) {
	bin := buildKV(t)
	addr, cmd, exited := startBinary(t, bin, "--data-dir", t.TempDir(), "--unload-idle", "20ms")
	defer func() { _ = cmd.Process.Kill() }()

	ctx := context.Background()
	rc := redis.NewClient(&redis.Options{Addr: addr})
	defer rc.Close()
	ps := rc.Subscribe(ctx, "kv:bucket:cart")
	defer ps.Close()
	_, err := ps.ReceiveTimeout(ctx, 10*time.Second)
	require.NoError(t, err)

	require.NoError(t, rc.HSet(ctx, "cart", "apples", "3", "pears", "1").Err())
	ev := nextEvent(t, ps)
	assert.Equal(t, "created", ev.Event)
	first := ev.ID
	ev = nextEvent(t, ps)
	assert.Equal(t, "exited", ev.Event, "unused for a while")
	assert.Equal(t, first, ev.ID)
	assert.Equal(t, resp.ReasonIdle, ev.Reason)

	assert.Equal(t, int64(1), rc.DBSize(ctx).Val(), "still listed")
	assert.Equal(t, []string{"cart"}, rc.Keys(ctx, "*").Val())
	assert.Equal(t, map[string]string{"apples": "3", "pears": "1"}, rc.HGetAll(ctx, "cart").Val(), "loaded back whole")
	ev = nextEvent(t, ps)
	assert.Equal(t, "created", ev.Event, "loaded again")
	assert.NotEqual(t, first, ev.ID, "a new instance")

	// A client that keeps writing keeps its bucket in memory: each write
	// lands, in order, whatever the unloads between them.
	for i := range 200 {
		require.NoError(t, rc.HIncrBy(ctx, "counter", "n", 1).Err(), "write %d", i)
	}
	assert.Equal(t, "200", rc.HGet(ctx, "counter", "n").Val())

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	requireCleanExit(t, cmd, exited, "SIGTERM")
}

// --unload-idle is a duration that is not negative; with --in-memory,
// where unloading would lose the data, it is ignored, with a warning.
func TestUnloadIdleFlag(t *testing.T) {
	var out, errOut bytes.Buffer
	assert.Equal(t, exitUsage, run([]string{"--unload-idle", "-1s"}, nil, &out, &errOut, nil))
	assert.Contains(t, errOut.String(), "--unload-idle (KV_UNLOAD_IDLE) is -1s (0 keeps every bucket in memory)")
	errOut.Reset()
	assert.Equal(t, exitUsage, run([]string{"--unload-idle", "600"}, nil, &out, &errOut, nil))
	assert.Contains(t, errOut.String(), "not a duration")

	o, _, done := parse([]string{"--in-memory"}, []string{"KV_UNLOAD_IDLE=10m"}, &out, &errOut)
	require.False(t, done)
	assert.Equal(t, 10*time.Minute, o.unloadIdle)
	assert.Contains(t, o.warnings, "kv: --in-memory writes nothing to disk; --data-dir, --fsync, --keep-checkpoints and --unload-idle are ignored")
}
