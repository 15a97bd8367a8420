package bucket

import (
	"errors"
	"maps"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/internal/store"
)

// openStore opens a store in which bucket "b" is recorded.
func openStore(t *testing.T, faults *store.Faults) *store.Store {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{Fsync: store.FsyncAlways, Faults: faults, RetryInterval: time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, st.Close()) })
	require.NoError(t, st.CreateBucket("b"))
	return st
}

func loadT(t *testing.T, st *store.Store, name string) map[string][]byte {
	t.Helper()
	var pairs map[string][]byte
	require.Eventually(t, func() bool { // the store's reads wait for its recovery
		var err error
		pairs, _, err = st.Load(name)
		return err == nil
	}, 10*time.Second, time.Millisecond)
	return pairs
}

// Every kind of write of a durable bucket reaches the store.
func TestDurableBucketRecordsEveryWrite(t *testing.T) {
	st := openStore(t, nil)
	b := Restore("b", 1, map[string][]byte{"old": []byte("0")}, st)
	require.NoError(t, b.Put("p", []byte("1")))
	added, err := b.Set("s", []byte("2"))
	require.NoError(t, err)
	assert.True(t, added)
	_, err = b.Delete("old")
	require.NoError(t, err)
	_, err = b.Delete("missing")
	assert.ErrorIs(t, err, ErrNotFound)
	require.NoError(t, b.Update(func(tx *Tx) error {
		require.NoError(t, tx.Put("u", []byte("3")))
		require.NoError(t, tx.Put("u", []byte("4")))
		_, err := tx.Delete("p")
		return err
	}))
	aborted := errors.New("abort")
	assert.ErrorIs(t, b.Update(func(tx *Tx) error {
		require.NoError(t, tx.Put("never", []byte("x")))
		return aborted
	}), aborted)
	want := map[string][]byte{"s": []byte("2"), "u": []byte("4")}
	assert.Equal(t, want, loadT(t, st, "b"))
	assert.NoError(t, b.View(func(tx *Tx) error {
		assert.Equal(t, 2, tx.Len())
		return nil
	}))
}

// A write that fails below the store is reported, is not visible in memory
// (the bucket ends when the failure is found after the write was applied,
// and its data in the store does not hold the write), and writes succeed
// again once the fault clears.
func TestDurableBucketFailedWrite(t *testing.T) {
	for _, tc := range []struct {
		name   string
		inject func(*store.Faults)
	}{
		{"failed sync", func(f *store.Faults) { f.FailSyncs(syscall.EIO) }},
		{"full disk", func(f *store.Faults) { f.FailWrites(syscall.ENOSPC) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			faults := &store.Faults{}
			st := openStore(t, faults)
			b := Restore("b", 1, nil, st)
			require.NoError(t, b.Put("k", []byte("old")))

			tc.inject(faults)
			err := b.Put("k", []byte("new"))
			require.ErrorIs(t, err, store.ErrWriteFailed)
			if v, gerr := b.Get("k"); gerr == nil {
				assert.Equal(t, "old", string(v), "a failed write is not visible")
			} else {
				assert.ErrorIs(t, gerr, ErrEnded, "or the bucket ended, to be reloaded")
			}
			// An Update fails too, and is rolled back.
			if uerr := b.Update(func(tx *Tx) error { return tx.Put("u", []byte("1")) }); !errors.Is(uerr, ErrEnded) {
				require.ErrorIs(t, uerr, store.ErrWriteFailed)
				ok, _ := b.Len()
				assert.Equal(t, 1, ok)
			}

			faults.Clear()
			b = Restore("b", 2, loadT(t, st, "b"), st) // what the registry does
			v, err := b.Get("k")
			require.NoError(t, err)
			assert.Equal(t, "old", string(v))
			require.Eventually(t, func() bool { return b.Put("after", []byte("1")) == nil || b.Err() != nil }, 10*time.Second, time.Millisecond)
			if b.Err() != nil { // a write raced the recovery: reload once more
				b = Restore("b", 3, loadT(t, st, "b"), st)
				require.NoError(t, b.Put("after", []byte("1")))
			}
			assert.Equal(t, map[string][]byte{"k": []byte("old"), "after": []byte("1")}, loadT(t, st, "b"))
		})
	}
}

// A write that failed does not reach the disk through a later one: a
// writer that read it from memory (an increment after a failed increment)
// must not make it durable once the store takes writes again. The bucket
// ends before the store may recover, so the disk holds exactly the
// acknowledged increments.
func TestFailedWriteDoesNotReachTheDiskThroughTheNextOne(t *testing.T) {
	incr := func(tx *Tx) error {
		n := 0
		if v, err := tx.Get("c"); err == nil {
			n, _ = strconv.Atoi(string(v))
		}
		return tx.Put("c", []byte(strconv.Itoa(n+1)))
	}
	for round := range 20 {
		faults := &store.Faults{}
		// Every write may try a recovery: the second client's retries
		// probe the store as often as they can.
		st, err := store.Open(t.TempDir(), store.Options{Fsync: store.FsyncAlways, Faults: faults, RetryInterval: time.Nanosecond})
		require.NoError(t, err)
		t.Cleanup(func() { assert.NoError(t, st.Close()) })
		require.NoError(t, st.CreateBucket("b"))
		require.NoError(t, st.CreateBucket("other"))
		b := Restore("b", 1, nil, st)
		require.NoError(t, b.Put("c", []byte("0")))

		lost, err := b.UpdateNoWait(incr) // c is 1 in memory; its write waits in the open group
		require.NoError(t, err)
		faults.FailSyncs(syscall.EIO)
		// Another write commits the group: it fails, and so will lost.
		require.ErrorIs(t, st.Apply("other", store.Put("x", []byte("1"))), store.ErrWriteFailed)
		faults.Clear()

		// A second client retries an increment until it is answered.
		tried := make(chan struct{})
		answered := make(chan error, 1)
		go func() {
			for i := 0; ; i++ {
				err := b.Update(incr)
				if i == 0 {
					close(tried) // refused: the store waits for lost to be answered
				}
				if err == nil || errors.Is(err, ErrEnded) {
					answered <- err
					return
				}
			}
		}()
		<-tried
		require.ErrorIs(t, lost.Wait(), store.ErrWriteFailed)
		want := "0"
		if err := <-answered; err == nil {
			want = "1"
		}
		assert.Equal(t, want, string(loadT(t, st, "b")["c"]), "round %d: what is on disk is the acknowledged increments", round)
	}
}

// A bucket without a store is exactly an in-memory bucket.
func TestRestoreWithoutStore(t *testing.T) {
	b := Restore("m", 1, map[string][]byte{"a": []byte("1")}, nil)
	assert.False(t, b.Durable())
	v, err := b.Get("a")
	require.NoError(t, err)
	assert.Equal(t, "1", string(v))
	require.NoError(t, b.Put("b", []byte("2")))
	n, _ := b.Len()
	assert.Equal(t, 2, n)
}

// Concurrent writes of every kind (grouped Puts and Sets, Deletes and
// Updates written directly) reach the store in memory's order: when the
// bucket ends, after the writers or in their midst, the store holds
// exactly what memory held.
func TestDurableBucketStoreMatchesMemory(t *testing.T) {
	for _, midst := range []bool{false, true} {
		t.Run(strconv.FormatBool(midst), func(t *testing.T) { testStoreMatchesMemory(t, midst) })
	}
}

func testStoreMatchesMemory(t *testing.T, midst bool) {
	st := openStore(t, nil)
	b := Restore("b", 1, nil, st)
	var wg sync.WaitGroup
	var taken map[string][]byte
	var once sync.Once
	take := func() {
		once.Do(func() {
			var err error
			taken, err = b.Take(nil)
			assert.NoError(t, err)
		})
	}
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				key := "k" + strconv.Itoa((g*7+i)%20)
				val := []byte(strconv.Itoa(g*1000 + i))
				var err error
				switch i % 4 {
				case 0:
					err = b.Put(key, val)
				case 1:
					_, err = b.Set(key, val)
				case 2:
					_, err = b.Delete(key)
					if errors.Is(err, ErrNotFound) {
						err = nil
					}
				case 3:
					err = b.Update(func(tx *Tx) error {
						if err := tx.Put(key, val); err != nil {
							return err
						}
						return tx.Put(key+"u", val)
					})
				}
				if errors.Is(err, ErrEnded) && midst {
					return
				}
				if !assert.NoError(t, err) {
					return
				}
				if midst && g == 0 && i == 150 {
					take()
				}
			}
		}()
	}
	wg.Wait()
	take()
	assert.Equal(t, taken, loadT(t, st, "b"))
}

// A write the store refuses is rolled back, and the keys it deleted come
// back as copies: the front ends pass keys that alias their read buffers
// (a zero-copy string), which they reuse once the call returns.
func TestRolledBackDeleteKeepsNoAliasOfTheKey(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{})
	require.NoError(t, err)
	require.NoError(t, st.CreateBucket("b"))
	data := map[string][]byte{"field": []byte("v")}
	for i := range 9 { // enough for the bucket to keep a scan index
		data["other"+strconv.Itoa(i)] = []byte("w")
	}
	want := slices.Collect(maps.Keys(data))
	b := Restore("b", 1, data, st)
	scan := func() (keys []string, next uint64) {
		require.NoError(t, b.View(func(tx *Tx) error {
			keys, next, err = tx.Scan(0, 10)
			return err
		}))
		return keys, next
	}
	scan() // builds the scan index, which the rollback updates too
	// Every later write is refused.
	require.NoError(t, st.Close())

	buf := []byte("field")
	key := unsafe.String(&buf[0], len(buf))
	err = b.Update(func(tx *Tx) error {
		_, err := tx.Delete(key)
		return err
	})
	require.ErrorIs(t, err, store.ErrClosed)
	copy(buf, "xxxxx") // the front end reads its next request

	v, err := b.Get("field")
	require.NoError(t, err)
	assert.Equal(t, "v", string(v))
	keys, err := b.Keys()
	require.NoError(t, err)
	assert.ElementsMatch(t, want, keys)
	got, next := scan()
	assert.Zero(t, next)
	assert.ElementsMatch(t, want, got)
}

// A panic in an Update of a durable bucket ends the bucket and stores none
// of the function's writes: the bucket the registry loads back from the
// store, once the crashed one is forgotten, is as it was before the
// Update, not half written.
func TestPanicInDurableUpdateStoresNothing(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{Fsync: store.FsyncAlways})
	require.NoError(t, err)
	require.NoError(t, st.CreateBucket("b"))
	b := Restore("b", 1, nil, st)
	require.NoError(t, b.Put("k", []byte("before")))
	err = b.Update(func(tx *Tx) error {
		require.NoError(t, tx.Put("k", []byte("half")))
		require.NoError(t, tx.Put("new", []byte("half")))
		panic("user function failed")
	})
	var perr *PanicError
	require.ErrorAs(t, err, &perr)
	<-b.Done()
	assert.Equal(t, map[string][]byte{"k": []byte("before")}, loadT(t, st, "b"))
	// Bounded, rather than a Cleanup: a write of the crashed Update left
	// in flight would hang Close, and the test with it.
	closed := make(chan error, 1)
	go func() { closed <- st.Close() }()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs: a write of the crashed Update is still in flight")
	}
}
