package store

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pausedWALCopy is a disk on which the goroutine that reads a WAL for a
// copy (a checkpoint's) is descheduled for a while right after it has read
// the block the log's writer is filling, while on is set: what a busy
// machine or a slow disk does now and then.
type pausedWALCopy struct {
	vfs.FS
	on     *atomic.Bool
	paused *atomic.Int64 // how many copies were paused
}

func (d pausedWALCopy) Open(name string, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := d.FS.Open(name, opts...)
	var num uint32
	if _, serr := fmt.Sscanf(filepath.Base(name), "%d.log", &num); err != nil || serr != nil {
		return f, err
	}
	return &pausedReader{File: f, disk: d, logNum: num}, nil
}

type pausedReader struct {
	vfs.File
	disk   pausedWALCopy
	logNum uint32
	paused bool
}

func (r *pausedReader) Read(p []byte) (int, error) {
	n, err := r.File.Read(p)
	if r.disk.on.Load() && !r.paused && n == walBlockSize {
		// A block that holds chunks of this log, then something else (an
		// older log's, in a recycled file): the writer's position.
		pos := int64(0)
		for walBlockSize-pos >= walSyncHeader {
			c, ok := chunkAt(p[:n], pos)
			if !ok || c.logNum != r.logNum {
				break
			}
			pos += int64(c.size)
		}
		if pos > 0 && walBlockSize-pos >= walSyncHeader && !zeros(p[pos:n]) {
			r.paused = true
			r.disk.paused.Add(1)
			time.Sleep(50 * time.Millisecond)
		}
	}
	return n, err
}

// A checkpoint copies the newest WAL while writers append to it. In a
// recycled WAL file (pebble reuses old logs), the bytes past the writes
// are an older log's: a copy that reads the block the writer is filling,
// and the next block after the writer has gone on into it, holds an older
// log's bytes in the middle of the log, with whole writes after them. It
// happened unaided, about once in 20 checkpoints under load; the disk here
// pauses the copy at that block, every time. Every checkpoint must check
// clean, start without a word about its WAL and hold every write
// acknowledged before it began: before the fix, kv check called such a
// checkpoint damaged ("unreadable at byte N, and M bytes of later writes
// follow"), and a start from it logged possible damage (FsyncEverySec) or
// was refused (FsyncAlways: a later write says the log was synced past the
// hole).
func TestCheckpointUnderLoadChecksClean(t *testing.T) {
	for _, policy := range []Fsync{FsyncEverySec, FsyncAlways} {
		t.Run(policy.String(), func(t *testing.T) {
			var pause atomic.Bool
			disk := pausedWALCopy{FS: vfs.Default, on: &pause, paused: new(atomic.Int64)}
			s, err := open(t.TempDir(), Options{Fsync: policy}, disk)
			require.NoError(t, err)
			defer func() { assert.NoError(t, s.Close()) }()
			const writers = 4
			var stop atomic.Bool
			var wrote atomic.Int64
			var acked [writers]atomic.Int64 // each writer's writes acknowledged
			var wg sync.WaitGroup
			defer func() { stop.Store(true); wg.Wait() }()
			val := []byte(strings.Repeat("v", 3000))
			for g := range writers {
				wg.Go(func() {
					for i := 1; !stop.Load(); i++ {
						err := s.Apply(fmt.Sprint("b", g), Put(fmt.Sprint("k", i%500), val), Put("n", []byte(strconv.Itoa(i))))
						if err != nil {
							t.Error(err)
							return
						}
						acked[g].Store(int64(i))
						wrote.Add(int64(len(val)))
					}
				})
			}
			// Enough memtables for pebble to recycle WALs.
			require.Eventually(t, func() bool { return wrote.Load() > 16<<20 }, 30*time.Second, 10*time.Millisecond)
			pause.Store(true)
			base := t.TempDir()
			for n := range 4 {
				var before [writers]int64
				for g := range before {
					before[g] = acked[g].Load()
				}
				cp := filepath.Join(base, strconv.Itoa(n))
				require.NoError(t, s.Checkpoint(cp))
				rep, err := Check(cp)
				require.NoError(t, err, "checkpoint %d", n+1)
				require.Empty(t, rep.Problems)
				logs := &logBuffer{}
				c, err := Open(cp, Options{Logger: logs.logger()})
				require.NoError(t, err, "a start from checkpoint %d", n+1)
				for g := range before {
					pairs, found, err := c.Load(fmt.Sprint("b", g))
					require.NoError(t, err)
					require.True(t, found)
					got, err := strconv.ParseInt(string(pairs["n"]), 10, 64)
					require.NoError(t, err)
					assert.GreaterOrEqual(t, got, before[g], "checkpoint %d holds writer %d's acknowledged writes", n+1, g)
				}
				require.NoError(t, c.Close())
				require.NotContains(t, logs.String(), "write-ahead log", "checkpoint %d: a start from it says nothing of its WAL", n+1)
			}
			require.Positive(t, disk.paused.Load(), "a copy was paused at the writer's block")
		})
	}
}
