package store

import (
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The tests here are the failures a randomized stress test of the fence
// found in recovery (writers of every size against faults toggled at
// random), made deterministic. Each failed on the code before its fix.

// failNextWAL is a disk whose next WAL, once armed, fails its first write
// (the disk is full again).
type failNextWAL struct {
	vfs.FS
	armed *atomic.Bool
}

type failFirstWrite struct {
	vfs.File
	done bool
}

func (f *failFirstWrite) Write(p []byte) (int, error) {
	if !f.done {
		f.done = true
		return 0, fmt.Errorf("injected: %w", syscall.ENOSPC)
	}
	return f.File.Write(p)
}

func (d failNextWAL) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err == nil && isWAL(name) && d.armed.CompareAndSwap(true, false) {
		return &failFirstWrite{File: f}, nil
	}
	return f, err
}

func (d failNextWAL) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := d.FS.Create(name, c)
	return d.wrap(name, f, err)
}

func (d failNextWAL) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := d.FS.ReuseForWrite(oldname, newname, c)
	return d.wrap(newname, f, err)
}

// eventuallyWrites waits until a write to bucket succeeds (each attempt
// may try a recovery).
func eventuallyWrites(t *testing.T, s *Store, bucket string) {
	t.Helper()
	require.Eventually(t, func() bool { return s.Apply(bucket, Put("probe", []byte("1"))) == nil },
		20*time.Second, time.Millisecond, "a write succeeds once the disk works")
}

// Under everysec a recovery replays the acknowledged writes not yet
// fsynced from the bytes it kept. Pebble's batch took those bytes and,
// once closed, its pool reused them; when that recovery failed (here the
// new WAL's first write), the next one replayed garbage: pebble's fatal
// "inconsistent batch count", a wedged commit pipeline, a store that
// never wrote again, and the acknowledged writes lost.
func TestRecoveryAfterAFailedRecoveryReplaysIntactWrites(t *testing.T) {
	dir := t.TempDir()
	faults := &Faults{}
	var armed atomic.Bool
	s, err := open(dir, Options{Fsync: FsyncEverySec, Faults: faults,
		RetryInterval: time.Millisecond, syncEvery: time.Hour}, failNextWAL{vfs.Default, &armed})
	require.NoError(t, err)
	require.NoError(t, s.Apply("b", Put("k1", []byte("v1")), Put("k2", []byte("v2"))))
	require.NoError(t, s.Apply("b", Put("k3", []byte("v3"))))

	// The background fsync fails: k1..k3, acknowledged, are to be replayed.
	faults.FailSyncs(fmt.Errorf("injected: %w", syscall.EIO))
	require.Error(t, s.syncNow())
	faults.Clear()
	armed.Store(true) // the recovery's new WAL fails its first write: the replay's
	require.Eventually(t, func() bool {
		_ = s.Apply("other", Put("x", []byte("1"))) // fails, trying a recovery
		return !armed.Load()
	}, 20*time.Second, time.Millisecond, "a recovery reopens, and its WAL fails")

	eventuallyWrites(t, s, "other")
	want := map[string][]byte{"k1": []byte("v1"), "k2": []byte("v2"), "k3": []byte("v3")}
	checkAcrossRestart(t, s, dir, FsyncEverySec, func(s *Store) {
		pairs, _, err := s.Load("b")
		require.NoError(t, err)
		assert.Equal(t, want, pairs)
	})
}

// Under everysec a recovery replays the acknowledged writes into the new
// engine's WAL, whose sync only writes. It then forgot them, though no
// fsync had made them durable: a second fault before the next background
// fsync cut them from the new WAL, and nothing replayed them.
func TestReplayedWritesSurviveTheNextFault(t *testing.T) {
	dir := t.TempDir()
	faults := &Faults{}
	s := openT(t, dir, Options{Fsync: FsyncEverySec, Faults: faults, RetryInterval: time.Millisecond, syncEvery: time.Hour})
	require.NoError(t, s.Apply("b", Put("k1", []byte("v1")))) // acknowledged, not fsynced

	faults.FailSyncs(fmt.Errorf("injected: %w", syscall.EIO))
	require.Error(t, s.syncNow())
	faults.Clear()
	eventuallyWrites(t, s, "other") // the first recovery replays k1

	faults.FailWrites(fmt.Errorf("injected: %w", syscall.ENOSPC))
	require.ErrorIs(t, s.Apply("b", Put("failed", []byte("x"))), ErrWriteFailed)
	faults.Clear()
	eventuallyWrites(t, s, "other") // the second

	checkAcrossRestart(t, s, dir, FsyncEverySec, func(s *Store) {
		pairs, _, err := s.Load("b")
		require.NoError(t, err)
		assert.Equal(t, map[string][]byte{"k1": []byte("v1")}, pairs)
	})
}

// failNextSST is a disk whose next table, once armed, cannot be created.
type failNextSST struct {
	vfs.FS
	armed *atomic.Bool
}

func (d failNextSST) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	if strings.HasSuffix(name, ".sst") && d.armed.CompareAndSwap(true, false) {
		return nil, fmt.Errorf("create %s: injected: %w", name, syscall.ENOSPC)
	}
	return d.FS.Create(name, c)
}

// A recovery reopens pebble with the fence lifted. When the disk failed
// again inside pebble.Open (the flush of the replayed WAL could not create
// its table), the fence went up, the flush went on in memory, and the
// compaction it started waited on the fence for a Close, while Open waited
// for the compaction: recovery hung, holding the store's lock, and every
// write, read and Close with it, however long the disk worked again.
func TestFaultWhileReopeningDoesNotHang(t *testing.T) {
	for _, policy := range []Fsync{FsyncAlways, FsyncEverySec} {
		t.Run(policy.String(), func(t *testing.T) {
			dir := t.TempDir()
			faults := &Faults{}
			var armed atomic.Bool
			s, err := open(dir, Options{Fsync: policy, Faults: faults, RetryInterval: time.Millisecond, syncEvery: time.Hour},
				failNextSST{vfs.Default, &armed})
			require.NoError(t, err)
			// Three overlapping L0 tables (pebble compacts L0 from four):
			// the reopen's flush makes the fourth, and a compaction.
			big := make([]byte, 1<<20)
			for i := 0; ; i++ {
				s.mu.RLock()
				m := s.db.Metrics()
				s.mu.RUnlock()
				if m.Levels[0].Sublevels >= 3 {
					break
				}
				require.Less(t, i, 1000)
				require.NoError(t, s.Apply("b", Put(fmt.Sprint("k", i%3), big)))
				require.NoError(t, s.fold()) // the same three pairs in every table
			}
			s.mu.RLock()
			require.NoError(t, s.db.Flush())
			s.mu.RUnlock()
			require.NoError(t, s.Apply("b", Put("small", []byte("1")))) // for the reopen to flush

			faults.FailWrites(fmt.Errorf("injected: %w", syscall.ENOSPC))
			require.ErrorIs(t, s.Apply("b", Put("failed", []byte("x"))), ErrWriteFailed)
			faults.Clear()
			armed.Store(true) // the reopen's flush fails to create its table

			done := make(chan struct{})
			go func() {
				defer close(done)
				for s.Apply("b", Put("after", []byte("2"))) != nil {
				}
			}()
			select {
			case <-done:
			case <-time.After(time.Minute):
				t.Fatal("recovery hangs inside pebble.Open with the disk working")
			}
			assert.False(t, armed.Load(), "the reopen met the failing table")
			require.NoError(t, s.Close())
		})
	}
}
