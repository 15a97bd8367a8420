package resp

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/internal/store"
)

// WAIT answers 0 replicas at once (kv has none), and WAIT and WAITAOF
// check their arguments with Redis's errors; in memory WAITAOF answers
// [0 0], and refuses numlocal 1 as Redis does without an append-only file.
func TestWaitInMemory(t *testing.T) {
	rc := start(t, Config{}).client(t)
	ctx := context.Background()
	for _, tc := range []struct {
		args []any
		want any
	}{
		{[]any{"WAIT", "0", "0"}, int64(0)},
		{[]any{"WAIT", "1", "100"}, int64(0)},
		{[]any{"WAIT", "-5", "10"}, int64(0)},
		{[]any{"WAITAOF", "0", "0", "0"}, []any{int64(0), int64(0)}},
		{[]any{"WAITAOF", "0", "3", "10"}, []any{int64(0), int64(0)}},
	} {
		got, err := rc.Do(ctx, tc.args...).Result()
		require.NoError(t, err, "%v", tc.args)
		assert.Equal(t, tc.want, got, "%v", tc.args)
	}
	for _, tc := range []struct {
		args []any
		want string
	}{
		{[]any{"WAIT", "x", "0"}, "ERR value is not an integer or out of range"},
		{[]any{"WAIT", "0", "x"}, "ERR timeout is not an integer or out of range"},
		{[]any{"WAIT", "0", "-1"}, "ERR timeout is negative"},
		{[]any{"WAITAOF", "1", "0", "0"}, "ERR WAITAOF cannot be used when numlocal is set but appendonly is disabled."},
		{[]any{"WAITAOF", "2", "0", "0"}, "ERR value is out of range, value must between 0 and 1"},
		{[]any{"WAITAOF", "-1", "0", "0"}, "ERR value is out of range, value must between 0 and 1"},
		{[]any{"WAITAOF", "x", "0", "0"}, "ERR value is not an integer or out of range"},
		{[]any{"WAITAOF", "0", "-1", "0"}, "ERR value is out of range, must be positive"},
		{[]any{"WAITAOF", "0", "0", "-1"}, "ERR timeout is negative"},
		{[]any{"WAITAOF", "0", "0"}, "ERR wrong number of arguments for 'waitaof' command"},
	} {
		err := rc.Do(ctx, tc.args...).Err()
		require.Error(t, err, "%v", tc.args)
		assert.Equal(t, tc.want, err.Error(), "%v", tc.args)
	}
}

// With a durable store WAITAOF answers [1 0] once the client's writes,
// pipelined before it too, are on disk; a write the disk loses makes it an
// error. It waits for the disk on the client's own goroutine: another
// client is served meanwhile, even while the disk hangs.
func TestWaitAOFDurable(t *testing.T) {
	ctx := context.Background()
	faults := &store.Faults{}
	ds := startDurable(t, t.TempDir(), store.Options{Fsync: store.FsyncEverySec, Faults: faults})
	r := ds.raw(t)
	r.send("HSET k f v\r\nWAITAOF 1 0 0\r\nWAITAOF 0 0 0\r\n")
	r.expect(":1", "*2", ":1", ":0", "*2", ":1", ":0")

	resume := faults.Stall()
	defer resume()
	r.send("HSET k f w\r\nWAITAOF 1 0 0\r\n")
	other := ds.raw(t)
	other.send("PING\r\n")
	other.expect("+PONG")
	resume()
	r.expect(":0", "*2", ":1", ":0")

	// Written to the OS and acknowledged, as everysec does; then the
	// fsync that WAITAOF asks for fails, and it says so.
	r.send("HSET k f x\r\n")
	r.expect(":0")
	faults.FailSyncs(syscall.EIO)
	r.send("WAITAOF 1 0 0\r\n")
	reply := r.line()
	assert.True(t, strings.HasPrefix(reply, "-"), "the failed fsync: %s", reply)
	faults.Clear()
	rc := ds.client(t)
	require.Eventually(t, func() bool { return rc.HSet(ctx, "probe", "f", "v").Err() == nil }, 10*time.Second, time.Millisecond)
	v, err := rc.Do(ctx, "WAITAOF", "1", "0", "0").Result()
	require.NoError(t, err)
	assert.Equal(t, []any{int64(1), int64(0)}, v)
	assert.Equal(t, "x", rc.HGet(ctx, "k", "f").Val(), "the acknowledged write, replayed by the recovery")
}

// In a transaction WAITAOF does not wait, as in Redis (a client in MULTI
// may not block): it answers [0 0] at once. Waiting there would fsync
// under the transactions' exclusive lock (on the event loop's goroutine,
// flagLong being ignored in a transaction), holding every other client for
// as long as the disk takes, and would commit the transaction's writes
// made before it apart from those after it (a store Settle commits a held
// group), so that a crash could keep half of them.
func TestWaitAOFInTransactionDoesNotWait(t *testing.T) {
	ds := startDurable(t, t.TempDir(), store.Options{Fsync: store.FsyncEverySec})
	r := ds.raw(t)
	r.send("MULTI\r\nHSET k f w\r\nWAITAOF 1 0 0\r\nHSET k g x\r\nEXEC\r\n")
	r.expect("+OK", "+QUEUED", "+QUEUED", "+QUEUED", "*3", ":1", "*2", ":0", ":0", ":1")
	r.send("WAITAOF 1 0 0\r\n") // out of one, it waits as ever
	r.expect("*2", ":1", ":0")
}
