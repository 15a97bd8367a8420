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

// A RENAME's move joins the writes around it, pipelined or in a
// transaction, and its reply waits for it as theirs do: when their commit
// is lost, every reply is an error, and src, dst and the counter keep
// what was acknowledged, in memory (KEYS, HGET) as after a restart. So do
// a RENAMENX's move and a COPY's.
func TestDurableLostRenameKeepsBothKeys(t *testing.T) {
	for _, mv := range []struct {
		name   string
		target string
		queue  func(p redis.Pipeliner, target string)
	}{
		{"RENAME", "dst", func(p redis.Pipeliner, target string) { p.Rename(context.Background(), "src", target) }},
		{"RENAMENX", "new", func(p redis.Pipeliner, target string) { p.RenameNX(context.Background(), "src", target) }},
		{"COPY REPLACE", "dst", func(p redis.Pipeliner, target string) { p.Copy(context.Background(), "src", target, 0, true) }},
	} {
		for _, tx := range []bool{false, true} {
			name := mv.name + "/pipelined"
			if tx {
				name = mv.name + "/in a transaction"
			}
			t.Run(name, func(t *testing.T) {
				ctx := context.Background()
				faults := &store.Faults{}
				dir := t.TempDir()
				ds := startDurable(t, dir, faultyAlways(faults))
				rc := ds.client(t)
				require.NoError(t, rc.HSet(ctx, "src", "f", "old src").Err())
				require.NoError(t, rc.HSet(ctx, "dst", "f", "old dst").Err())
				require.NoError(t, rc.HSet(ctx, "ctr", "n", "0").Err())

				faults.FailSyncs(syscall.EIO)
				run := rc.Pipelined
				if tx {
					run = rc.TxPipelined
				}
				cmds, _ := run(ctx, func(p redis.Pipeliner) error {
					p.HSet(ctx, "src", "f", "new src")
					mv.queue(p, mv.target)
					p.HSet(ctx, mv.target, "g", "after")
					p.HSet(ctx, "ctr", "n", "1")
					return nil
				})
				require.Len(t, cmds, 4)
				for _, c := range cmds {
					assert.Error(t, c.Err(), "%v", c.Args())
				}
				assert.Contains(t, cmds[1].Err().Error(), "write failed")
				faults.Clear()
				require.Eventually(t, func() bool { return rc.HSet(ctx, "probe", "f", "v").Err() == nil }, 10*time.Second, time.Millisecond)

				check := func(rc *redis.Client) {
					t.Helper()
					assert.ElementsMatch(t, []string{"src", "dst", "ctr", "probe"}, rc.Keys(ctx, "*").Val())
					assert.Equal(t, map[string]string{"f": "old src"}, rc.HGetAll(ctx, "src").Val())
					assert.Equal(t, map[string]string{"f": "old dst"}, rc.HGetAll(ctx, "dst").Val())
					assert.Equal(t, "0", rc.HGet(ctx, "ctr", "n").Val())
				}
				check(rc)
				ds.stop()
				ds = startDurable(t, dir, store.Options{})
				check(ds.client(t))
			})
		}
	}
}

// A RENAME answers once its move is durable, with the writes pipelined
// around it, and a client that reads after the reply finds the pairs
// under the new name, after a restart too.
func TestDurableRenamePipelined(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	ds := startDurable(t, dir, store.Options{Fsync: store.FsyncAlways})
	r := ds.raw(t)
	r.send("HSET a f 1\r\nRENAME a b\r\nHSET b g 2\r\nRENAME b c\r\nRENAME missing x\r\nHMGET c f g\r\nEXISTS a b\r\n")
	r.expect(":1", "+OK", ":1", "+OK", "-ERR no such key", "*2", "$1", "1", "$1", "2", ":0")
	ds.stop()
	ds = startDurable(t, dir, store.Options{})
	rc := ds.client(t)
	assert.Equal(t, []string{"c"}, rc.Keys(ctx, "*").Val())
	assert.Equal(t, map[string]string{"f": "1", "g": "2"}, rc.HGetAll(ctx, "c").Val())
}
