package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// walSync reports, over the WALs the store has written, whether every byte
// written has been fsynced, and whether anything was written at all.
func walSync(s *Store) (allSynced, wrote bool) {
	s.fs.mu.Lock()
	defer s.fs.mu.Unlock()
	allSynced = true
	for _, ws := range s.fs.wals {
		wrote = wrote || ws.written > 0
		allSynced = allSynced && ws.written <= ws.synced
	}
	return allSynced, wrote
}

func unsyncedLen(s *Store) int {
	s.unsyncedMu.Lock()
	defer s.unsyncedMu.Unlock()
	return len(s.unsynced)
}

// How each policy reaches the disk, seen from the file system below pebble.
func TestPolicies(t *testing.T) {
	t.Run("always: fsynced when Apply returns", func(t *testing.T) {
		s := openT(t, t.TempDir(), Options{Fsync: FsyncAlways})
		defer s.Close()
		for range 10 {
			require.NoError(t, s.Apply("b", Put("k", []byte("v"))))
			synced, wrote := walSync(s)
			require.True(t, wrote)
			require.True(t, synced)
		}
	})
	t.Run("everysec: written at once, fsynced by the background loop", func(t *testing.T) {
		s := openT(t, t.TempDir(), Options{Fsync: FsyncEverySec, syncEvery: 20 * time.Millisecond})
		defer s.Close()
		require.NoError(t, s.Apply("b", Put("k", []byte("v"))))
		_, wrote := walSync(s)
		assert.True(t, wrote, "in the OS when Apply returns")
		assert.Equal(t, 1, unsyncedLen(s), "kept for a replay until fsynced")
		require.Eventually(t, func() bool {
			synced, _ := walSync(s)
			return synced && unsyncedLen(s) == 0
		}, 10*time.Second, time.Millisecond)
	})
	t.Run("no: written at once, never fsynced until Close", func(t *testing.T) {
		s := openT(t, t.TempDir(), Options{Fsync: FsyncNo})
		require.NoError(t, s.Apply("b", Put("k", []byte("v"))))
		synced, wrote := walSync(s)
		assert.True(t, wrote)
		assert.False(t, synced)
		assert.Zero(t, unsyncedLen(s))
		require.NoError(t, s.Close())
		synced, _ = walSync(s)
		assert.True(t, synced, "closing the WAL fsyncs it")
	})
}

// Sync puts every write made before it on disk whatever the policy: a
// write still waiting in its group, and those written to the OS only
// (WAITAOF).
func TestSyncFsyncsWhateverThePolicy(t *testing.T) {
	for _, policy := range []Fsync{FsyncAlways, FsyncEverySec, FsyncNo} {
		t.Run(fmt.Sprint(policy), func(t *testing.T) {
			// A background sync an hour away: only Sync can have done it.
			s := openT(t, t.TempDir(), Options{Fsync: policy, syncEvery: time.Hour})
			defer s.Close()
			require.NoError(t, s.Apply("b", Put("k", []byte("v"))))
			w, err := s.ApplyNoWait("b", Put("k2", []byte("v2"))) // queued, not committed
			require.NoError(t, err)
			require.NoError(t, s.Sync())
			synced, wrote := walSync(s)
			assert.True(t, wrote)
			assert.True(t, synced, "every byte written is fsynced")
			assert.Zero(t, unsyncedLen(s), "nothing left for a replay")
			require.NoError(t, w.Wait(), "the queued write was committed, durably")
		})
	}
}

// The store keeps track of the WALs it may have to cut at a fault: only
// those on the disk, whatever the policy. (Under always and no, nothing
// pruned the closed ones: an entry for every WAL the store ever wrote.)
func TestTrackedWALsStayBounded(t *testing.T) {
	for _, p := range []Fsync{FsyncAlways, FsyncNo} {
		t.Run(p.String(), func(t *testing.T) {
			s := openT(t, t.TempDir(), Options{Fsync: p})
			defer s.Close()
			value := make([]byte, 256<<10)
			for i := range 160 { // 40 MiB: ten memtables, each with its WAL
				require.NoError(t, s.Apply("b", Put(fmt.Sprint(i%8), value)))
			}
			s.fs.mu.Lock()
			tracked := len(s.fs.wals)
			s.fs.mu.Unlock()
			assert.LessOrEqual(t, tracked, 4)
		})
	}
}
