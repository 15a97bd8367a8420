package store

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// committedGroups returns how many log records (groups) s has committed.
func committedGroups(s *Store) uint64 {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	return s.logNext
}

// A Hold keeps a transaction's writes in one group, one atomic write: a
// client's wait for a write of the group (WaitOrUndo) waits for the
// release rather than commit the group with only the writes made so far,
// and the group takes writes past its usual size.
func TestHoldKeepsWritesInOneGroup(t *testing.T) {
	for _, policy := range []Fsync{FsyncAlways, FsyncEverySec, FsyncNo} {
		t.Run(policy.String(), func(t *testing.T) {
			s := openT(t, t.TempDir(), Options{Fsync: policy})
			defer func() { require.NoError(t, s.Close()) }()
			for _, b := range []string{"a", "b", "c"} {
				require.NoError(t, s.CreateBucket(b))
			}
			waiting := make(chan struct{})
			var once sync.Once
			s.testHoldWaitHook = func() { once.Do(func() { close(waiting) }) }
			before := committedGroups(s)

			release := s.Hold()
			w1, err := s.ApplyPairsNoWait("a", Put("k", []byte("1")))
			require.NoError(t, err)
			first := make(chan error, 1)
			go func() { first <- w1.WaitOrUndo(false, nil) }()
			select {
			case <-waiting:
			case err := <-first:
				t.Fatalf("the wait committed the held group: %v", err)
			case <-time.After(10 * time.Second):
				t.Fatal("the wait neither waited for the hold nor returned")
			}
			// More than a group's usual size: still one group.
			big := []byte(strings.Repeat("v", largeBatch))
			w2, err := s.ApplyPairsNoWait("b", Put("k", big))
			require.NoError(t, err)
			w3, err := s.ApplyPairsNoWait("c", Put("k", []byte("3")))
			require.NoError(t, err)
			release()
			release() // a second call changes nothing
			require.NoError(t, <-first)
			require.NoError(t, w2.WaitOrUndo(false, nil))
			require.NoError(t, w3.WaitOrUndo(true, nil))
			assert.Equal(t, before+1, committedGroups(s), "one group, one log record, for the three writes")

			// Released: groups are made and closed as usual again.
			w4, err := s.ApplyPairsNoWait("a", Put("k", big))
			require.NoError(t, err)
			w5, err := s.ApplyPairsNoWait("a", Put("k", []byte("5")))
			require.NoError(t, err)
			require.NoError(t, w4.Wait())
			require.NoError(t, w5.Wait())
			assert.Equal(t, before+3, committedGroups(s), "a large write alone, then the next")
			for b, want := range map[string]string{"b": string(big), "c": "3", "a": "5"} {
				pairs, _, err := s.Load(b)
				require.NoError(t, err)
				assert.Equal(t, want, string(pairs["k"]), b)
			}
		})
	}
}

// The store's synchronous operations are not held: under a Hold, Settle
// (and with it Load), Apply and DropBucket commit the held group and
// return, on the holder's goroutine too; the writes after them form a new
// held group, which the release lets go.
func TestHoldDoesNotStopSynchronousOperations(t *testing.T) {
	s := openT(t, t.TempDir(), Options{Fsync: FsyncEverySec})
	defer func() { require.NoError(t, s.Close()) }()
	require.NoError(t, s.CreateBucket("a"))
	require.NoError(t, s.CreateBucket("gone"))
	before := committedGroups(s)
	release := s.Hold()
	w1, err := s.ApplyPairsNoWait("a", Put("k", []byte("1")))
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		if err := s.Settle(); err != nil {
			done <- err
			return
		}
		if _, _, err := s.Load("a"); err != nil {
			done <- err
			return
		}
		if err := s.Apply("a", Put("sync", []byte("1"))); err != nil {
			done <- err
			return
		}
		done <- s.DropBucket("gone")
	}()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("a synchronous operation waited for the hold")
	}
	require.NoError(t, w1.WaitOrUndo(false, nil), "committed by Settle")
	after := committedGroups(s)
	assert.Greater(t, after, before)
	w2, err := s.ApplyPairsNoWait("a", Put("k", []byte("2")))
	require.NoError(t, err)
	w3, err := s.ApplyPairsNoWait("a", Put("k2", []byte("3")))
	require.NoError(t, err)
	release()
	require.NoError(t, w2.WaitOrUndo(false, nil))
	require.NoError(t, w3.WaitOrUndo(false, nil))
	assert.Equal(t, after+1, committedGroups(s), "the writes after the synchronous ones: one group")
	pairs, _, err := s.Load("a")
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"k": "2", "k2": "3", "sync": "1"}, stringsOf(pairs))
	found, err := s.Has("gone")
	require.NoError(t, err)
	assert.False(t, found)
}

func stringsOf(pairs map[string][]byte) map[string]string {
	m := make(map[string]string, len(pairs))
	for k, v := range pairs {
		m[k] = string(v)
	}
	return m
}

// Holds may overlap: the held group is let go with the last release.
func TestOverlappingHolds(t *testing.T) {
	s := openT(t, t.TempDir(), Options{Fsync: FsyncNo})
	defer func() { require.NoError(t, s.Close()) }()
	require.NoError(t, s.CreateBucket("a"))
	before := committedGroups(s)
	r1, r2 := s.Hold(), s.Hold()
	var ws []Waiter
	for i := range 3 {
		w, err := s.ApplyPairsNoWait("a", Put(fmt.Sprint(i), []byte("v")))
		require.NoError(t, err)
		ws = append(ws, w)
	}
	r1()
	s.queueMu.Lock()
	held := s.open != nil && s.open.held
	s.queueMu.Unlock()
	assert.True(t, held, "still held by the second Hold")
	r2()
	for _, w := range ws {
		require.NoError(t, w.WaitOrUndo(false, nil))
	}
	assert.Equal(t, before+1, committedGroups(s))
}

// A checkpoint holds a transaction whole or not at all: begun while a
// Hold keeps a group, it waits for the release and then holds every write
// of the group, where committing what it found would have cut the group
// in two (the writes after the checkpoint began still count: they were
// made under the Hold that began before it).
func TestCheckpointWaitsForHolds(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, filepath.Join(dir, "data"), Options{Fsync: FsyncEverySec})
	defer func() { require.NoError(t, s.Close()) }()
	require.NoError(t, s.CreateBucket("a"))
	release := s.Hold()
	w1, err := s.ApplyPairsNoWait("a", Put("first", []byte("1")))
	require.NoError(t, err)
	gate := make(chan struct{})
	s.testCheckpointGateHook = func() { close(gate) }
	done := make(chan error, 1)
	cp := filepath.Join(dir, "cp")
	go func() { done <- s.Checkpoint(cp) }()
	<-gate // the checkpoint is about to commit what came before it
	w2, err := s.ApplyPairsNoWait("a", Put("second", []byte("2")))
	require.NoError(t, err)
	release()
	require.NoError(t, <-done)
	require.NoError(t, w1.WaitOrUndo(false, nil))
	require.NoError(t, w2.WaitOrUndo(false, nil))

	c := openT(t, cp, Options{Fsync: FsyncEverySec})
	defer func() { require.NoError(t, c.Close()) }()
	pairs, _, err := c.Load("a")
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"first": "1", "second": "2"}, stringsOf(pairs))
}

// A checkpoint holds a transaction that drops a bucket whole or not at
// all. A drop (as a move or a load) under a Hold commits what came before
// it at once, without waiting for the release; a transaction that began
// once the checkpoint had committed the writes before it, and before it
// copied the store, had its drop in the copy and not its later writes
// (found by kill -9 rounds with BGSAVE under MULTI RENAME a b, RENAME b
// c: a checkpoint held the first rename only). The checkpoint now holds
// new Holds back until the copy is made.
func TestCheckpointHoldsATransactionWithADropWhole(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, filepath.Join(dir, "data"), Options{Fsync: FsyncEverySec})
	defer func() { require.NoError(t, s.Close()) }()
	require.NoError(t, s.CreateBucket("a"))
	require.NoError(t, s.CreateBucket("gone"))
	began := make(chan struct{}) // the transaction has dropped and written
	copied := make(chan struct{})
	txDone := make(chan error, 1)
	// The checkpoint has committed what came before it and is about to
	// copy the store: a transaction begins, drops "gone", writes to "a",
	// and ends once the copy is made.
	s.testCheckpointCopyHook = func() {
		go func() {
			release := s.Hold()
			err := s.DropBucket("gone")
			var w Waiter
			if err == nil {
				w, err = s.ApplyPairsNoWait("a", Put("k", []byte("1")))
			}
			close(began)
			<-copied
			release()
			if err == nil {
				err = w.WaitOrUndo(false, nil)
			}
			txDone <- err
		}()
		if s.holdMu.TryRLock() { // a Hold may begin before the copy
			s.holdMu.RUnlock()
			<-began
		}
	}
	s.testSaveHook = func(string) error { close(copied); return nil }
	cp := filepath.Join(dir, "cp")
	require.NoError(t, s.Checkpoint(cp))
	require.NoError(t, <-txDone)

	c := openT(t, cp, Options{Fsync: FsyncEverySec})
	defer func() { require.NoError(t, c.Close()) }()
	kept, err := c.Has("gone")
	require.NoError(t, err)
	pairs, _, err := c.Load("a")
	require.NoError(t, err)
	if kept {
		assert.Empty(t, pairs, "the checkpoint holds the transaction's write without its drop")
	} else {
		assert.Equal(t, map[string]string{"k": "1"}, stringsOf(pairs), "the checkpoint holds the transaction's drop without its write")
	}
	// The store itself holds the whole transaction.
	kept, err = s.Has("gone")
	require.NoError(t, err)
	assert.False(t, kept)
	pairs, _, err = s.Load("a")
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"k": "1"}, stringsOf(pairs))
}

// A checkpoint that ends while a transaction runs does not split it: the
// write that records the checkpoint's time, made once the copy is done
// (after the checkpoint has let the Holds go on), joins the held group
// rather than commit it with the transaction's first writes only. Before,
// it committed them, and the transaction's next writes formed a group of
// their own: a crash between the two kept half of the transaction.
func TestCheckpointEndDoesNotSplitAHold(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, filepath.Join(dir, "data"), Options{Fsync: FsyncEverySec})
	defer func() { require.NoError(t, s.Close()) }()
	require.NoError(t, s.CreateBucket("a"))
	var (
		release func()
		w1      Waiter
	)
	// The checkpoint has copied the store: a transaction begins, on
	// another goroutine, and makes its first write.
	s.testSaveHook = func(string) error {
		began := make(chan error, 1)
		go func() {
			release = s.Hold()
			var err error
			w1, err = s.ApplyPairsNoWait("a", Put("first", []byte("1")))
			began <- err
		}()
		return <-began
	}
	waiting := make(chan struct{})
	var once sync.Once
	s.testHoldWaitHook = func() { once.Do(func() { close(waiting) }) }
	done := make(chan error, 1)
	go func() { done <- s.Checkpoint(filepath.Join(dir, "cp")) }()
	checkpointed := false
	select {
	case err := <-done: // it recorded its time without waiting for the hold
		require.NoError(t, err)
		checkpointed = true
	case <-waiting: // it waits for the transaction's release
	case <-time.After(10 * time.Second):
		t.Fatal("the checkpoint neither returned nor waited for the hold")
	}
	w2, err := s.ApplyPairsNoWait("a", Put("second", []byte("2")))
	require.NoError(t, err)
	release()
	if !checkpointed {
		require.NoError(t, <-done)
	}
	require.NoError(t, w1.WaitOrUndo(false, nil))
	require.NoError(t, w2.WaitOrUndo(false, nil))
	assert.True(t, w1.g == w2.g, "the transaction's writes were split across groups")
	assert.False(t, s.LastSave().IsZero())
}

// A drop queued by DropBucketNoWait joins the open group as a write to a
// field does, under a Hold too: a transaction's DEL is in its one atomic
// write (before, DEL waited for its drop, which committed the held group
// and split the transaction). Readers see the bucket until the drop is
// committed.
func TestDropBucketNoWaitJoinsTheGroup(t *testing.T) {
	s := openT(t, t.TempDir(), Options{Fsync: FsyncAlways})
	defer func() { require.NoError(t, s.Close()) }()
	for _, b := range []string{"a", "b"} {
		require.NoError(t, s.Apply(b, Put("k", []byte("v"))))
	}
	before := committedGroups(s)

	release := s.Hold()
	w1, err := s.ApplyPairsNoWait("a", Put("k", []byte("1")))
	require.NoError(t, err)
	w2, err := s.DropBucketNoWait("b")
	require.NoError(t, err)
	w3, err := s.ApplyNoWait("c", Put("k", []byte("3")))
	require.NoError(t, err)
	has, err := s.Has("b")
	require.NoError(t, err)
	assert.True(t, has, "not committed yet")
	release()
	require.NoError(t, w1.WaitOrUndo(false, nil))
	require.NoError(t, w2.WaitOrUndo(false, nil))
	require.NoError(t, w3.WaitOrUndo(true, nil))
	assert.Equal(t, before+1, committedGroups(s), "one group, one log record, for the three writes")

	has, err = s.Has("b")
	require.NoError(t, err)
	assert.False(t, has, "dropped")
	pairs, found, err := s.Load("c")
	require.NoError(t, err)
	require.True(t, found)
	assert.Equal(t, "3", string(pairs["k"]))
}
