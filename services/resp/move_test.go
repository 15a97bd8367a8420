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

// RENAMENX answers as Redis 7 does (checked against redis-server 7.0.15):
// 1 and the key moved when the new name is free, 0 and nothing changed when
// it exists (the same name included), ERR no such key for a missing
// source; pipelined and in a transaction, in memory and with a store,
// where the move outlives a restart.
func TestRenameNXCommand(t *testing.T) {
	inBothModes(t, func(t *testing.T, client, restart func() *redis.Client) {
		ctx := context.Background()
		rc := client()
		require.NoError(t, rc.HSet(ctx, "a", "f", "a").Err())
		require.NoError(t, rc.HSet(ctx, "b", "f", "b").Err())

		// Result, not Val: an error reads as false too.
		requireBool := func(want bool, cmd *redis.BoolCmd, msg string) {
			t.Helper()
			got, err := cmd.Result()
			require.NoError(t, err, msg)
			assert.Equal(t, want, got, msg)
		}
		requireBool(false, rc.RenameNX(ctx, "a", "b"), "b exists")
		requireBool(false, rc.RenameNX(ctx, "a", "a"), "the same name")
		assert.EqualError(t, rc.RenameNX(ctx, "nope", "c").Err(), "ERR no such key")
		assert.EqualError(t, rc.RenameNX(ctx, "nope", "nope").Err(), "ERR no such key")
		assert.Equal(t, map[string]string{"f": "a"}, rc.HGetAll(ctx, "a").Val())
		assert.Equal(t, map[string]string{"f": "b"}, rc.HGetAll(ctx, "b").Val())

		requireBool(true, rc.RenameNX(ctx, "a", "c"), "c is free")
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
		if restart != nil {
			check(restart())
		}
	})
}

// COPY answers as Redis 7 does (checked against redis-server 7.0.15): 1
// once the destination holds a copy, 0 for a missing source or an
// existing destination without REPLACE, Redis's errors for the same name,
// a bad option or another database; the copy is a key of its own, and
// with a store it outlives a restart.
func TestCopy(t *testing.T) {
	inBothModes(t, func(t *testing.T, client, restart func() *redis.Client) {
		ctx := context.Background()
		rc := client()
		require.NoError(t, rc.HSet(ctx, "a", "f", "a", "g", "2").Err())
		require.NoError(t, rc.HSet(ctx, "b", "f", "b").Err())

		for _, tc := range []struct {
			args []any
			want string
		}{
			{[]any{"COPY", "a", "a"}, "ERR source and destination objects are the same"},
			{[]any{"COPY", "nope", "nope"}, "ERR source and destination objects are the same"},
			{[]any{"COPY", "a", "z", "foo"}, "ERR syntax error"},
			{[]any{"COPY", "a", "z", "DB"}, "ERR syntax error"},
			{[]any{"COPY", "a", "z", "db", "0", "replace", "x"}, "ERR syntax error"},
			{[]any{"COPY", "a", "z", "db", "x"}, "ERR value is not an integer or out of range"},
			{[]any{"COPY", "a", "z", "db", "99999999999"}, "ERR value is out of range, value must between -2147483648 and 2147483647"},
			{[]any{"COPY", "a", "z", "db", "1"}, "ERR DB index is out of range"},
			{[]any{"COPY", "a"}, "ERR wrong number of arguments for 'copy' command"},
		} {
			assert.EqualError(t, rc.Do(ctx, tc.args...).Err(), tc.want, "%v", tc.args)
		}
		// Result, not Val: an error reads as 0 too.
		requireInt := func(want int64, cmd interface{ Result() (int64, error) }, msg string) {
			t.Helper()
			got, err := cmd.Result()
			require.NoError(t, err, msg)
			assert.Equal(t, want, got, msg)
		}
		requireInt(0, rc.Copy(ctx, "nope", "c", 0, false), "a missing source")
		requireInt(0, rc.Copy(ctx, "nope", "c", 0, true), "a missing source, with REPLACE")
		requireInt(0, rc.Copy(ctx, "a", "b", 0, false), "b exists")
		assert.Equal(t, map[string]string{"f": "b"}, rc.HGetAll(ctx, "b").Val())
		assert.Equal(t, []string{"a", "b"}, rc.Keys(ctx, "*").Val())

		requireInt(1, rc.Copy(ctx, "a", "c", 0, false), "c is free")
		requireInt(1, rc.Copy(ctx, "a", "b", 0, true), "REPLACE")
		assert.Equal(t, int64(1), rc.Do(ctx, "COPY", "a", "d", "DB", "0", "REPLACE", "db", "0").Val())
		require.NoError(t, rc.HSet(ctx, "c", "only", "c").Err())
		require.NoError(t, rc.HIncrBy(ctx, "a", "g", 1).Err())

		cmds, err := rc.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, "a", "tx", "1")
			p.Copy(ctx, "a", "e", 0, false)
			p.Copy(ctx, "a", "e", 0, false)
			return nil
		})
		require.NoError(t, err)
		assert.Equal(t, int64(1), cmds[1].(*redis.IntCmd).Val())
		assert.Equal(t, int64(0), cmds[2].(*redis.IntCmd).Val())

		// A copy onto a watched key fails the watcher's EXEC.
		watcher := client()
		require.NoError(t, watcher.Watch(ctx, func(tx *redis.Tx) error {
			require.Equal(t, int64(1), rc.Copy(ctx, "b", "w", 0, true).Val())
			_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.HSet(ctx, "w", "watcher", "1")
				return nil
			})
			assert.ErrorIs(t, err, redis.TxFailedErr)
			return nil
		}, "w"))
		require.NoError(t, rc.Del(ctx, "w").Err())

		check := func(rc *redis.Client) {
			t.Helper()
			assert.ElementsMatch(t, []string{"a", "b", "c", "d", "e"}, rc.Keys(ctx, "*").Val())
			assert.Equal(t, map[string]string{"f": "a", "g": "3", "tx": "1"}, rc.HGetAll(ctx, "a").Val())
			assert.Equal(t, map[string]string{"f": "a", "g": "2"}, rc.HGetAll(ctx, "b").Val())
			assert.Equal(t, map[string]string{"f": "a", "g": "2", "only": "c"}, rc.HGetAll(ctx, "c").Val())
			assert.Equal(t, map[string]string{"f": "a", "g": "2"}, rc.HGetAll(ctx, "d").Val())
			assert.Equal(t, map[string]string{"f": "a", "g": "3", "tx": "1"}, rc.HGetAll(ctx, "e").Val())
		}
		check(rc)
		if restart != nil {
			check(restart())
		}
	})
}

// inBothModes runs test against a server in memory, then against one with
// a store. client returns a new client of the server; restart, nil in
// memory, stops the durable server and returns a client of a new one on
// the same data directory.
func inBothModes(t *testing.T, test func(t *testing.T, client, restart func() *redis.Client)) {
	t.Run("in memory", func(t *testing.T) {
		ts := start(t, Config{})
		test(t, func() *redis.Client { return ts.client(t) }, nil)
	})
	t.Run("durable", func(t *testing.T) {
		dir := t.TempDir()
		ds := startDurable(t, dir, store.Options{})
		test(t, func() *redis.Client { return ds.client(t) }, func() *redis.Client {
			ds.stop()
			return startDurable(t, dir, store.Options{}).client(t)
		})
	})
}

// SELECT and COPY's DB option answer each command once: an index they
// refuse gets its error and nothing more, which go-redis would not show
// (it drops a connection that holds a reply it did not ask for), so the
// replies are read raw, each error followed by a PING's.
func TestSelectAndCopyDBAnswerOnce(t *testing.T) {
	ts := start(t, Config{})
	r := ts.raw(t)
	r.send("HSET a f 1\r\n")
	r.expect(":1")
	for _, tc := range []struct{ cmd, reply string }{
		{"SELECT 0", "+OK"},
		{"SELECT 1", "-ERR DB index is out of range"},
		{"SELECT x", "-ERR value is not an integer or out of range"},
		{"SELECT 99999999999", "-ERR value is out of range, value must between -2147483648 and 2147483647"},
		{"COPY a z DB 1", "-ERR DB index is out of range"},
		{"COPY a z DB x", "-ERR value is not an integer or out of range"},
		{"COPY a z DB", "-ERR syntax error"},
		{"COPY a a", "-ERR source and destination objects are the same"},
		{"COPY a z DB 0", ":1"},
	} {
		r.send(tc.cmd + "\r\nPING\r\n")
		r.expect(tc.reply, "+PONG")
	}
}

// A COPY whose write the disk refuses answers an error, not 1, and its
// destination is not there: not listed, not readable, not after a restart;
// a COPY REPLACE that fails leaves the destination's old pairs. Once the
// fault clears, COPY succeeds.
func TestDurableFailedCopyIsReportedAndNotVisible(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	faults := &store.Faults{}
	ds := startDurable(t, dir, faultyAlways(faults))
	rc := ds.client(t)
	require.NoError(t, rc.HSet(ctx, "src", "f", "new").Err())
	require.NoError(t, rc.HSet(ctx, "old", "f", "old").Err())

	faults.FailSyncs(syscall.EIO)
	err := rc.Copy(ctx, "src", "dst", 0, false).Err()
	require.Error(t, err, "a COPY the disk lost")
	assert.Contains(t, err.Error(), "write failed")
	err = rc.Copy(ctx, "src", "old", 0, true).Err()
	require.Error(t, err, "a COPY REPLACE the disk lost")
	assert.Zero(t, rc.Exists(ctx, "dst").Val())
	assert.ElementsMatch(t, []string{"src", "old"}, rc.Keys(ctx, "*").Val())
	// The destination COPY REPLACE would have replaced keeps its pairs;
	// a bucket a failed write ended is read back from the disk, which may
	// refuse it until the fault clears (an error, never "absent").
	if v, err := rc.HGet(ctx, "old", "f").Result(); err != nil {
		assert.NotEqual(t, redis.Nil, err)
	} else {
		assert.Equal(t, "old", v)
	}

	faults.Clear()
	require.Eventually(t, func() bool {
		return rc.Copy(ctx, "src", "later", 0, false).Err() == nil
	}, 10*time.Second, time.Millisecond)
	assert.Equal(t, "old", rc.HGet(ctx, "old", "f").Val(), "the replaced destination keeps its pairs")
	ds.stop()

	ds = startDurable(t, dir, store.Options{})
	rc = ds.client(t)
	assert.Zero(t, rc.Exists(ctx, "dst").Val(), "nor after a restart")
	assert.Equal(t, map[string]string{"f": "old"}, rc.HGetAll(ctx, "old").Val())
	assert.Equal(t, map[string]string{"f": "new"}, rc.HGetAll(ctx, "later").Val())
}
