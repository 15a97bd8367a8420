package store

import (
	"bytes"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Writes made before anyone waits share one group: one commit and one WAL
// record for all of them.
func TestWritesJoinOneGroup(t *testing.T) {
	for _, policy := range []Fsync{FsyncAlways, FsyncEverySec, FsyncNo} {
		t.Run(policy.String(), func(t *testing.T) {
			dir := t.TempDir()
			s := openT(t, dir, Options{Fsync: policy})
			require.NoError(t, s.CreateBucket("b"))
			var ws []Waiter
			for i := range 10 {
				w, err := s.ApplyPairsNoWait("b", Put(fmt.Sprint(i), []byte{byte('a' + i)}))
				require.NoError(t, err)
				ws = append(ws, w)
			}
			for _, w := range ws {
				require.Same(t, ws[0].g, w.g, "one group")
			}
			for i := len(ws) - 1; i >= 0; i-- {
				require.NoError(t, ws[i].Wait())
			}
			g := ws[0].g
			assert.Equal(t, recordKey(g.seq, 1), g.key, "one WAL record: one log record for ten changes")
			if policy == FsyncAlways {
				assert.Equal(t, g.key, s.fs.goodKey(), "the group's record is the last one synced")
			}
			checkAcrossRestart(t, s, dir, policy, func(s *Store) {
				pairs, found, err := s.Load("b")
				require.NoError(t, err)
				require.True(t, found)
				assert.Len(t, pairs, 10)
				assert.Equal(t, []byte("j"), pairs["9"])
			})
		})
	}
}

// Groups commit in the order their writers joined, whoever waits first: a
// later write to a key wins, with a large write (which commits alone) in
// between, and a drop that follows a write not yet waited for removes it.
func TestGroupsCommitInJoiningOrder(t *testing.T) {
	for _, policy := range []Fsync{FsyncAlways, FsyncEverySec} {
		t.Run(policy.String(), func(t *testing.T) {
			dir := t.TempDir()
			s := openT(t, dir, Options{Fsync: policy})
			big := bytes.Repeat([]byte("2"), largeBatch)
			w1, err := s.ApplyNoWait("b", Put("k", []byte("1")))
			require.NoError(t, err)
			w2, err := s.ApplyNoWait("b", Put("k", big))
			require.NoError(t, err)
			w3, err := s.ApplyNoWait("b", Put("k", []byte("3")))
			require.NoError(t, err)
			require.NotSame(t, w1.g, w2.g, "a large write is a group of its own")
			require.NotSame(t, w2.g, w3.g, "and the writes after it start another")

			w4, err := s.ApplyNoWait("gone", Put("k", []byte("x")))
			require.NoError(t, err)
			require.NoError(t, s.DropBucket("gone"), "commits the groups before its own")
			for _, w := range []Waiter{w4, w3, w2, w1} {
				require.NoError(t, w.Wait())
			}
			checkAcrossRestart(t, s, dir, policy, func(s *Store) {
				pairs, _, err := s.Load("b")
				require.NoError(t, err)
				assert.Equal(t, []byte("3"), pairs["k"], "the last write wins")
				_, found, err := s.Load("gone")
				require.NoError(t, err)
				assert.False(t, found, "the drop came after the write")
			})
		})
	}
}

// A write that joined a group before Close began is committed and
// acknowledged: Close waits for its Waiter, then closes the engine.
func TestCloseCommitsWritesThatJoined(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{Fsync: FsyncAlways})
	w, err := s.ApplyNoWait("b", Put("k", []byte("v")))
	require.NoError(t, err)
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	require.Eventually(t, func() bool {
		s.mu.RLock()
		defer s.mu.RUnlock()
		return s.closed
	}, 10*time.Second, time.Millisecond)
	_, err = s.ApplyNoWait("b", Put("late", []byte("v")))
	require.ErrorIs(t, err, ErrClosed, "a write after Close began")
	require.NoError(t, w.Wait(), "the write that joined before")
	require.NoError(t, <-closed)

	s = openT(t, dir, Options{Fsync: FsyncAlways})
	defer func() { require.NoError(t, s.Close()) }()
	pairs, _, err := s.Load("b")
	require.NoError(t, err)
	assert.Equal(t, map[string][]byte{"k": []byte("v")}, pairs)
}

// Writers of many buckets, each ordered by its own lock as a bucket's
// writes are, wait for their writes outside it: every acknowledged value is
// the one the store keeps, and the writes shared commits.
func TestConcurrentWritersShareCommits(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{Fsync: FsyncAlways})
	const writers, buckets, rounds = 16, 4, 200
	var locks [buckets]sync.Mutex
	var last [buckets][writers]int // under locks[b]: the last value written
	groups := make(chan *group, writers*rounds)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range rounds {
				b := (w + i) % buckets
				locks[b].Lock()
				wt, err := s.ApplyNoWait(fmt.Sprint(b), Put(fmt.Sprint(w), []byte(fmt.Sprint(i))))
				if err == nil {
					last[b][w] = i
				}
				locks[b].Unlock()
				if !assert.NoError(t, err) || !assert.NoError(t, wt.Wait()) {
					return
				}
				groups <- wt.g
			}
		})
	}
	wg.Wait()
	close(groups)
	distinct := make(map[*group]bool)
	for g := range groups {
		distinct[g] = true
	}
	t.Logf("%d writes in %d commits", writers*rounds, len(distinct))
	checkAcrossRestart(t, s, dir, FsyncAlways, func(s *Store) {
		for b := range buckets {
			pairs, _, err := s.Load(fmt.Sprint(b))
			require.NoError(t, err)
			for w := range writers { // each wrote to each bucket
				assert.Equal(t, fmt.Sprint(last[b][w]), string(pairs[fmt.Sprint(w)]), "bucket %d, writer %d", b, w)
			}
		}
	})
}

// A checkpoint holds a write made before it whose Waiter has not been
// called yet (a pipeline "HSET; SAVE" is answered after SAVE ran): the
// write comes first in the commit order. (A review found the checkpoint
// taken before such a write's group was committed.)
func TestCheckpointHoldsAWriteMadeBeforeIt(t *testing.T) {
	for _, policy := range []Fsync{FsyncAlways, FsyncEverySec} {
		t.Run(policy.String(), func(t *testing.T) {
			s := openT(t, t.TempDir(), Options{Fsync: policy})
			defer func() { require.NoError(t, s.Close()) }()
			require.NoError(t, s.CreateBucket("b"))
			w, err := s.ApplyPairsNoWait("b", Put("k", []byte("v")))
			require.NoError(t, err)
			cp := filepath.Join(t.TempDir(), "cp")
			require.NoError(t, s.Checkpoint(cp))
			require.NoError(t, w.Wait())

			c := openT(t, cp, Options{Fsync: policy})
			defer func() { require.NoError(t, c.Close()) }()
			pairs, found, err := c.Load("b")
			require.NoError(t, err)
			require.True(t, found)
			assert.Equal(t, "v", string(pairs["k"]), "the write made before the checkpoint")
		})
	}
}

// The first writer of a group to wait yields before it commits, so that a
// writer that is ready to run joins the group and shares its commit. With
// one P, the writer readied just before the leader's Wait runs at that
// yield; without it, the leader would commit a group of one.
func TestLeaderLetsReadyWritersJoin(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	s := openT(t, t.TempDir(), Options{Fsync: FsyncNo})
	defer func() { require.NoError(t, s.Close()) }()
	require.NoError(t, s.CreateBucket("b"))
	const tries = 20
	shared := 0
	for i := range tries {
		start := make(chan struct{})
		joined := make(chan *group, 1)
		waited := make(chan error, 1)
		go func() {
			<-start
			w, err := s.ApplyPairsNoWait("b", Put("follower", []byte{byte(i)}))
			if err != nil {
				joined <- nil
				waited <- err
				return
			}
			joined <- w.g
			waited <- w.Wait()
		}()
		w, err := s.ApplyPairsNoWait("b", Put("leader", []byte{byte(i)}))
		require.NoError(t, err)
		close(start) // the follower is ready to run; with one P, not running
		require.NoError(t, w.Wait())
		g := <-joined
		require.NoError(t, <-waited)
		if g == w.g {
			shared++
		}
	}
	// The runtime may preempt a goroutine anywhere, so a few tries may
	// miss; without the yield, none shares.
	assert.GreaterOrEqual(t, shared, tries/2, "writes that shared the leader's commit, of %d", tries)
	pairs, _, err := s.Load("b")
	require.NoError(t, err)
	assert.Equal(t, map[string][]byte{"leader": {tries - 1}, "follower": {tries - 1}}, pairs)
}

// A panic inside a commit fails the writes of the groups it takes, with no
// waiter left waiting, and fences the store as the engine's fatal errors
// do: once the panics stop, a write reopens the engine and succeeds, and
// none of the failed writes is in the store.
func TestCommitPanicFailsItsGroups(t *testing.T) {
	s := openT(t, t.TempDir(), Options{Fsync: FsyncEverySec, RetryInterval: time.Millisecond})
	defer func() {
		if !t.Failed() { // else Close may wait for ever for a hung waiter
			require.NoError(t, s.Close())
		}
	}()
	require.NoError(t, s.Apply("b", Put("before", []byte("1"))))
	var panics atomic.Bool
	panics.Store(true)
	s.testCommitHook = func() {
		if panics.Load() {
			panic("injected")
		}
	}
	w1, err := s.ApplyNoWait("b", Put("k1", []byte("1")))
	require.NoError(t, err)
	w2, err := s.ApplyNoWait("b", Put("k2", bytes.Repeat([]byte("2"), largeBatch)))
	require.NoError(t, err)
	require.NotSame(t, w1.g, w2.g, "two groups")
	// The second write's waiter commits both groups; the panic comes at
	// the first, whose waiter must hear of it.
	require.ErrorIs(t, w2.Wait(), ErrWriteFailed)
	first := make(chan error, 1)
	go func() { first <- w1.Wait() }()
	select {
	case err := <-first:
		require.ErrorIs(t, err, ErrWriteFailed)
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter of a group the panicking commit took hangs")
	}
	require.ErrorIs(t, s.Err(), ErrWriteFailed, "the store is fenced")

	panics.Store(false)
	require.Eventually(t, func() bool { return s.Apply("b", Put("after", []byte("3"))) == nil },
		10*time.Second, time.Millisecond)
	pairs, _, err := s.Load("b")
	require.NoError(t, err)
	assert.Equal(t, map[string][]byte{"before": []byte("1"), "after": []byte("3")}, pairs)
}
