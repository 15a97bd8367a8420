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

// The memory a transaction keeps is bounded by MaxRequestBytes, the
// arguments' slices included: a command of many empty arguments keeps 24
// bytes of slice header for each, which counting the arguments' bytes
// alone took for nothing (a client could make the server keep any amount
// of memory for a few bytes of count).
func TestMultiQueueBoundCountsEveryArgument(t *testing.T) {
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			const limit = 64 << 10
			ts := start(t, Config{GoroutinePerClient: mode.goroutinePerClient, MaxRequestBytes: limit})
			r := ts.raw(t)
			// HDEL k and 2,000 empty fields: 12 KB to send, 48 KB of
			// argument slices to keep.
			var b strings.Builder
			b.WriteString("*2002\r\n$4\r\nHDEL\r\n$1\r\nk\r\n")
			for range 2000 {
				b.WriteString("$0\r\n\r\n")
			}
			cmd := b.String()
			const n = 40 // 1.9 MB kept: thirty times the bound
			r.send("MULTI\r\n")
			require.Equal(t, "+OK", r.line())
			refused := 0
			for range n {
				r.send(cmd)
				if l := r.line(); l != "+QUEUED" {
					assert.Contains(t, l, "transaction too large")
					refused++
				}
			}
			assert.Greater(t, refused, 0, "the queued commands keep more than MaxRequestBytes")
			r.send("EXEC\r\n")
			if refused > 0 {
				require.Equal(t, "-EXECABORT Transaction discarded because of previous errors.", r.line())
			}
		})
	}
}

// The observer (kv_commands_total, the latency histograms) sees a queued
// command when EXEC runs it, with its result then: a HINCRBY that fails in
// EXEC counts as failed (not EXEC, which ran), and a command of a
// discarded transaction, which never ran, is not counted. A command
// refused as it is queued counts as failed, as before.
func TestMultiObservedWhenRun(t *testing.T) {
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			obs := &recordingObserver{failed: map[string]bool{}}
			ts := start(t, Config{GoroutinePerClient: mode.goroutinePerClient, Observer: obs})
			r := ts.raw(t)
			r.send("MULTI\r\nHSET h s text\r\nHINCRBY h s 1\r\nEXEC\r\n")
			for _, want := range []string{"+OK", "+QUEUED", "+QUEUED", "*2", ":1", "-ERR hash value is not an integer"} {
				require.Equal(t, want, r.line())
			}
			cmds, failed, _ := obs.snapshot()
			assert.Equal(t, []string{"multi", "hset", "hincrby", "exec"}, cmds)
			assert.Equal(t, map[string]bool{"hincrby": true}, failed, "EXEC ran; HINCRBY failed")

			r.send("MULTI\r\nHDEL h s\r\nDISCARD\r\n")
			for _, want := range []string{"+OK", "+QUEUED", "+OK"} {
				require.Equal(t, want, r.line())
			}
			r.send("MULTI\r\nHGET h\r\nEXEC\r\n")
			for _, want := range []string{"+OK", "-ERR wrong number of arguments for 'hget' command", "-EXECABORT Transaction discarded because of previous errors."} {
				require.Equal(t, want, r.line())
			}
			cmds, failed, _ = obs.snapshot()
			assert.Equal(t, []string{"multi", "hset", "hincrby", "exec", "multi", "discard", "multi", "hget", "exec"}, cmds)
			assert.Equal(t, map[string]bool{"hincrby": true, "hget": true, "exec": true}, failed)
		})
	}
}

// With a store, a write that EXEC runs is observed once it has settled,
// under its own name, failed if its sync fails; EXEC itself once.
func TestDurableExecObserved(t *testing.T) {
	dir := t.TempDir()
	faults := &store.Faults{}
	obs := &recordingObserver{failed: map[string]bool{}}
	ds := startDurable(t, dir, store.Options{Fsync: store.FsyncAlways, Faults: faults, RetryInterval: time.Millisecond},
		func(c *Config) { c.Observer = obs })
	r := ds.raw(t)
	r.send("MULTI\r\nHSET a f 1\r\nHGET a f\r\nEXEC\r\n")
	for _, want := range []string{"+OK", "+QUEUED", "+QUEUED", "*2", ":1", "$1", "1"} {
		require.Equal(t, want, r.line())
	}
	cmds, failed, _ := obs.snapshot()
	assert.Equal(t, []string{"multi", "hget", "exec", "hset"}, cmds, "the write once it has settled")
	assert.Empty(t, failed)

	r.send("MULTI\r\nHSET a g 1\r\n")
	require.Equal(t, "+OK", r.line())
	require.Equal(t, "+QUEUED", r.line())
	faults.FailSyncs(syscall.EIO)
	r.send("EXEC\r\n")
	require.Equal(t, "*1", r.line())
	assert.Contains(t, r.line(), "write failed")
	cmds, failed, _ = obs.snapshot()
	assert.Equal(t, []string{"multi", "hget", "exec", "hset", "multi", "exec", "hset"}, cmds)
	assert.Equal(t, map[string]bool{"hset": true}, failed)
	faults.Clear()
	rc := ds.client(t)
	require.Eventually(t, func() bool { return rc.HSet(context.Background(), "a", "h", "1").Err() == nil },
		10*time.Second, time.Millisecond, "the store writes again")
}
