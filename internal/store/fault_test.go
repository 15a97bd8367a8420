package store

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The fault tests inject I/O errors below pebble (Options.Faults) and check
// the storage layer's side of issue 5: a failed write is reported, the store
// fences itself (later writes fail too), a write succeeds again once the
// fault clears, and what failed is not in the store, then or after a
// restart, while everything acknowledged is.
func TestFaults(t *testing.T) {
	enospc := fmt.Errorf("injected: %w", syscall.ENOSPC)
	eio := fmt.Errorf("injected: %w", syscall.EIO)
	cases := []struct {
		policy Fsync
		inject func(*Faults)
		// whether the write made while the fault is on fails at once (its
		// write or sync fails), or is acknowledged and the fault shows up
		// at the next background fsync
		failsAtOnce bool
	}{
		{FsyncAlways, func(f *Faults) { f.FailWrites(enospc) }, true},
		{FsyncAlways, func(f *Faults) { f.FailSyncs(eio) }, true},
		{FsyncEverySec, func(f *Faults) { f.FailWrites(enospc) }, true},
		{FsyncEverySec, func(f *Faults) { f.FailSyncs(eio) }, false},
		{FsyncNo, func(f *Faults) { f.FailWrites(enospc) }, true},
	}
	for _, c := range cases {
		var which string
		c.inject(&Faults{})
		f := &Faults{}
		c.inject(f)
		if w, _ := f.errs(); w != nil {
			which = "writes"
		} else {
			which = "syncs"
		}
		t.Run(c.policy.String()+"/"+which, func(t *testing.T) {
			dir := t.TempDir()
			faults := &Faults{}
			logs := &logBuffer{}
			opts := Options{Fsync: c.policy, Faults: faults, Logger: logs.logger(), RetryInterval: 5 * time.Millisecond, syncEvery: 10 * time.Millisecond}
			s := openT(t, dir, opts)
			defer func() { assert.NoError(t, s.Close()) }()

			require.NoError(t, s.Apply("b", Put("before", []byte("1"))))
			require.NoError(t, s.CreateBucket("empty"))
			c.inject(faults)

			want := map[string][]byte{"before": []byte("1")}
			err := s.Apply("b", Put("during", []byte("2")))
			if c.failsAtOnce {
				require.ErrorIs(t, err, ErrWriteFailed)
			} else {
				// Acknowledged (it reached the OS); the background fsync
				// fails next, and the write must survive the recovery.
				require.NoError(t, err)
				want["during"] = []byte("2")
				require.Eventually(t, func() bool { return s.Err() != nil }, 10*time.Second, time.Millisecond)
			}
			require.ErrorIs(t, s.Err(), ErrWriteFailed)
			// onFault publishes the fault, then logs it: the background
			// sync that met it may not have written the line yet.
			require.Eventually(t, func() bool { return strings.Contains(logs.String(), "a write to disk failed") },
				10*time.Second, time.Millisecond, logs.String())

			// While the fault lasts, every write fails, recovery included,
			// however often it is tried, and nothing is half-applied.
			for range 3 {
				tried := s.retries.Load()
				require.Eventually(t, func() bool {
					assert.ErrorIs(t, s.Apply("b", Put("fenced", []byte("3"))), ErrWriteFailed)
					return s.retries.Load() > tried // a recovery was tried, and failed
				}, 10*time.Second, time.Millisecond)
				assert.ErrorIs(t, s.CreateBucket("fenced"), ErrWriteFailed)
				assert.ErrorIs(t, s.DropBucket("b"), ErrWriteFailed)
			}
			_, err = s.Stats()
			assert.ErrorIs(t, err, ErrWriteFailed, "the store's own reads wait for the recovery")

			// The fault clears: a later write succeeds.
			faults.Clear()
			require.Eventually(t, func() bool {
				return s.Apply("b", Put("after", []byte("4"))) == nil
			}, 10*time.Second, time.Millisecond)
			want["after"] = []byte("4")
			require.NoError(t, s.Err())
			assert.Contains(t, logs.String(), "recovered; writes work again")

			check := func(s *Store) {
				all := loadAll(t, s)
				assert.Equal(t, map[string]map[string][]byte{"b": want, "empty": {}}, all)
			}
			check(s)
			require.NoError(t, s.Close())
			s = openT(t, dir, Options{Fsync: c.policy})
			check(s)
		})
	}
}

// A Waiter whose write failed reports it; the caller reloads the bucket
// from the store once it has recovered, and the failed write is not there.
func TestFailedWaitIsNotInStore(t *testing.T) {
	faults := &Faults{}
	s := openT(t, t.TempDir(), Options{Fsync: FsyncAlways, Faults: faults, RetryInterval: time.Millisecond})
	defer s.Close()
	require.NoError(t, s.Apply("b", Put("k", []byte("old"))))
	faults.FailSyncs(syscall.EIO)
	w, err := s.ApplyNoWait("b", Put("k", []byte("new")))
	require.NoError(t, err, "applied; the sync is what fails")
	require.ErrorIs(t, w.Wait(), ErrWriteFailed)
	faults.Clear()
	var pairs map[string][]byte
	require.Eventually(t, func() bool {
		pairs, _, err = s.Load("b")
		return err == nil
	}, 10*time.Second, time.Millisecond)
	assert.Equal(t, map[string][]byte{"k": []byte("old")}, pairs)
}

// Closing a store whose writes fail returns (with an error) and releases the
// directory; the next Open finds every acknowledged write.
func TestCloseWhileFailing(t *testing.T) {
	for _, policy := range []Fsync{FsyncAlways, FsyncEverySec} {
		t.Run(policy.String(), func(t *testing.T) {
			dir := t.TempDir()
			faults := &Faults{}
			s := openT(t, dir, Options{Fsync: policy, Faults: faults})
			require.NoError(t, s.Apply("b", Put("k", []byte("v"))))
			faults.FailWrites(syscall.ENOSPC)
			require.ErrorIs(t, s.Apply("b", Put("k2", []byte("v2"))), ErrWriteFailed)
			t.Logf("close: %v", s.Close())
			s = openT(t, dir, Options{})
			defer s.Close()
			p, _, err := s.Load("b")
			require.NoError(t, err)
			assert.Equal(t, map[string][]byte{"k": []byte("v")}, p)
		})
	}
}

// A store closed after a failed sync keeps exactly what was acknowledged:
// the write reported as failed (FsyncAlways) does not come back at the
// next start, and an acknowledged one (FsyncEverySec, whose background
// fsync failed) is there.
func TestCloseAfterFailedSyncKeepsWhatWasAcknowledged(t *testing.T) {
	for _, tc := range []struct {
		policy Fsync
		acked  bool // the write made while syncs fail is acknowledged
	}{{FsyncAlways, false}, {FsyncEverySec, true}} {
		t.Run(tc.policy.String(), func(t *testing.T) {
			dir := t.TempDir()
			faults := &Faults{}
			// The background sync is run by hand (syncEvery is an hour):
			// a loop's tick between faults.Clear and Close would recover
			// the store, and Close would then rightly return nil.
			s := openT(t, dir, Options{Fsync: tc.policy, Faults: faults, syncEvery: time.Hour})
			require.NoError(t, s.Apply("b", Put("k", []byte("v"))))
			faults.FailSyncs(syscall.EIO)
			err := s.Apply("b", Put("k2", []byte("v2")))
			want := map[string][]byte{"k": []byte("v")}
			if tc.acked {
				require.NoError(t, err)
				want["k2"] = []byte("v2")
				require.Error(t, s.syncNow(), "the background sync fails")
				require.ErrorIs(t, s.Err(), ErrWriteFailed)
			} else {
				require.ErrorIs(t, err, ErrWriteFailed)
			}
			faults.Clear()
			// Closed before any write could recover it: Close says the
			// store was failing (the daemon exits non-zero), and still
			// leaves exactly what was acknowledged.
			require.ErrorIs(t, s.Close(), ErrWriteFailed)
			s = openT(t, dir, Options{})
			defer s.Close()
			p, _, err := s.Load("b")
			require.NoError(t, err)
			assert.Equal(t, want, p)
		})
	}
}

// Close returns, and cuts the writes reported as failed, even while the
// disk still fails (it does not reopen the engine, whose Open would retry
// for ever on a full disk).
func TestCloseWhileSyncsStillFail(t *testing.T) {
	dir := t.TempDir()
	faults := &Faults{}
	s := openT(t, dir, Options{Fsync: FsyncAlways, Faults: faults, RetryInterval: time.Hour})
	require.NoError(t, s.Apply("b", Put("k", []byte("v"))))
	faults.FailSyncs(syscall.EIO)
	require.ErrorIs(t, s.Apply("b", Put("k1", []byte("v1"))), ErrWriteFailed)
	faults.FailWrites(syscall.ENOSPC)
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		assert.ErrorIs(t, err, ErrWriteFailed, "closed while writes still fail")
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs while the disk fails")
	}
	s = openT(t, dir, Options{})
	defer s.Close()
	p, _, err := s.Load("b")
	require.NoError(t, err)
	assert.Equal(t, map[string][]byte{"k": []byte("v")}, p, "the failed write does not come back")
}

// The engine shows a write to readers before it is on disk. A Load made
// while such a write may still fail waits for its fate, and never returns
// it if it fails (a bucket rebuilt from that Load would serve a write whose
// writer was told it failed), under each policy.
func TestLoadNeverReturnsAWriteThatThenFails(t *testing.T) {
	for _, policy := range []Fsync{FsyncAlways, FsyncEverySec, FsyncNo} {
		t.Run(policy.String(), func(t *testing.T) {
			faults := &Faults{}
			s := openT(t, t.TempDir(), Options{Fsync: policy, Faults: faults, RetryInterval: time.Millisecond})
			defer func() { assert.NoError(t, s.Close()) }()
			require.NoError(t, s.Apply("b", Put("kept", []byte("1"))))

			resume := faults.Stall()
			faults.FailWrites(fmt.Errorf("injected: %w", syscall.ENOSPC))
			w, err := s.ApplyPairsNoWait("b", Put("failed", []byte("2")))
			require.NoError(t, err, "queued")
			// Its writer commits it: the engine shows it to readers, and
			// its write to the log is stalled.
			waited := make(chan error, 1)
			go func() { waited <- w.Wait() }()
			require.Eventually(t, func() bool {
				s.commitMu.Lock()
				defer s.commitMu.Unlock()
				return w.g.committed
			}, 10*time.Second, time.Millisecond, "the write is committed")

			// Load while the write hangs: it must wait for the write's
			// fate (the delay only lets an old Load answer too early).
			time.AfterFunc(20*time.Millisecond, resume)
			pairs, _, err := s.Load("b")
			if err == nil {
				assert.NotContains(t, pairs, "failed")
			}
			require.ErrorIs(t, <-waited, ErrWriteFailed)

			faults.Clear()
			require.Eventually(t, func() bool {
				pairs, _, err = s.Load("b")
				return err == nil
			}, 10*time.Second, time.Millisecond)
			assert.Equal(t, map[string][]byte{"kept": []byte("1")}, pairs)
		})
	}
}

// A Waiter answered late (a pipelining connection holds it while it runs
// the rest of the pipeline), after a background sync covered its write,
// is durable already: a recovery must not replay it over a newer
// acknowledged write of the same key.
func TestLateWaiterIsNotReplayedOverANewerWrite(t *testing.T) {
	dir := t.TempDir()
	faults := &Faults{}
	s := openT(t, dir, Options{Fsync: FsyncEverySec, Faults: faults, RetryInterval: time.Millisecond, syncEvery: time.Hour})
	require.NoError(t, s.CreateBucket("b"))

	older, err := s.ApplyPairsNoWait("b", Put("k", []byte("old")))
	require.NoError(t, err)
	newer, err := s.ApplyPairsNoWait("b", Put("k", []byte("new")))
	require.NoError(t, err)
	require.NoError(t, newer.Wait())
	require.NoError(t, s.syncNow()) // the background sync: covers both
	require.NoError(t, older.Wait())

	faults.FailWrites(fmt.Errorf("injected: %w", syscall.ENOSPC))
	require.Error(t, s.Apply("other", Put("x", []byte("y"))))
	faults.Clear()
	require.Eventually(t, func() bool { return s.Apply("other", Put("x", []byte("z"))) == nil }, 10*time.Second, time.Millisecond)
	pairs, _, err := s.Load("b")
	require.NoError(t, err)
	assert.Equal(t, "new", string(pairs["k"]), "after the recovery")

	require.NoError(t, s.Close())
	s = openT(t, dir, Options{})
	defer func() { assert.NoError(t, s.Close()) }()
	pairs, _, err = s.Load("b")
	require.NoError(t, err)
	assert.Equal(t, "new", string(pairs["k"]), "after a restart")
}

// Checkpoints sync the WAL while the background sync does too, under
// writers: the two syncs never trip over each other (one used to panic
// while holding the lock every everysec write needs).
func TestCheckpointsWhileTheBackgroundSyncRuns(t *testing.T) {
	s := openT(t, t.TempDir(), Options{Fsync: FsyncEverySec, syncEvery: time.Millisecond})
	defer func() { assert.NoError(t, s.Close()) }()
	stop := make(chan struct{})
	var writers sync.WaitGroup
	for g := range 4 {
		writers.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				assert.NoError(t, s.Apply(fmt.Sprint("b", g), Put(fmt.Sprint("k", i), []byte("v"))))
			}
		})
	}
	dir := t.TempDir()
	for i := range 40 {
		require.NoError(t, s.Checkpoint(filepath.Join(dir, strconv.Itoa(i))))
	}
	close(stop)
	writers.Wait()
}
