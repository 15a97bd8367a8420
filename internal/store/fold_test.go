package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// logRecords counts the records in s's log, not yet folded.
func logRecords(t *testing.T, s *Store) int {
	t.Helper()
	s.mu.RLock()
	defer s.mu.RUnlock()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagLog}, UpperBound: []byte{tagLog + 1}})
	require.NoError(t, err)
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	require.NoError(t, it.Close())
	return n
}

// crashClose stops s as a crash would: the engine closes (its WAL holds
// every commit) without the fold that Close makes.
func crashClose(t *testing.T, s *Store) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	close(s.stop)
	<-s.stopped
	<-s.foldStopped
	require.NoError(t, s.db.Close())
	s.releaseLock()
}

// Writes, drops and re-creations are committed as log records and folded
// in their order: a read folds first and sees them all, the fold empties
// the log, and what a crash leaves in it is folded by the next Open.
func TestLogFoldsInOrder(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{Fsync: FsyncEverySec})
	require.NoError(t, s.Apply("a", Put("k1", []byte("1")), Put("k2", []byte("2"))))
	require.NoError(t, s.Apply("a", Put("k1", []byte("1b")), Delete("k2")))
	require.NoError(t, s.DropBucket("a"))
	require.NoError(t, s.Apply("a", Put("k3", []byte("3"))))
	require.NoError(t, s.Apply("gone", Put("x", []byte("x"))))
	require.NoError(t, s.DropAll())
	require.NoError(t, s.Apply("a", Put("k3", []byte("3b")), Put("k4", []byte("4"))))
	require.NoError(t, s.CreateBucket("empty"))
	w, err := s.Move("a", "moved", map[string][]byte{"k3": []byte("3b"), "k4": []byte("4")})
	require.NoError(t, err)
	require.NoError(t, w.Wait())
	require.NoError(t, s.Apply("moved", Put("k5", []byte("5"))))
	assert.Equal(t, 10, logRecords(t, s), "one record a write, none folded yet")

	want := map[string]map[string][]byte{
		"empty": {},
		"moved": {"k3": []byte("3b"), "k4": []byte("4"), "k5": []byte("5")},
	}
	assert.Equal(t, want, loadAll(t, s))
	assert.Zero(t, logRecords(t, s), "the read folded the log")

	// A crash leaves records in the log; Open folds them.
	require.NoError(t, s.Apply("moved", Delete("k3")))
	require.NoError(t, s.DropBucket("empty"))
	assert.Equal(t, 2, logRecords(t, s))
	crashClose(t, s)
	rep, err := Check(dir)
	require.NoError(t, err)
	assert.Equal(t, 2, rep.LogRecords, "kv check counts the records a crash left")
	assert.Equal(t, 1, rep.Buckets, "and counts what they change: a bucket dropped")
	assert.Equal(t, 2, rep.Keys, "a pair deleted")
	assert.Equal(t, int64(2+1+2+1), rep.Bytes)

	s = openT(t, dir, Options{Fsync: FsyncEverySec})
	assert.Zero(t, logRecords(t, s), "Open folded the log")
	assert.Equal(t, map[string]map[string][]byte{"moved": {"k4": []byte("4"), "k5": []byte("5")}}, loadAll(t, s))
	require.NoError(t, s.Close())
	rep, err = Check(dir)
	require.NoError(t, err)
	assert.Zero(t, rep.LogRecords)
	assert.Equal(t, 1, rep.Buckets)
	assert.Equal(t, 2, rep.Keys)
}

// The folder folds in the background once foldEvery bytes are logged; the
// rest waits for a read or for the next Open.
func TestFolderFoldsTheLog(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{Fsync: FsyncNo})
	// Each record is a value and a few bytes: the last write, and only
	// it, takes the log to foldEvery, so that no write races the fold.
	value := bytes.Repeat([]byte("v"), 512<<10)
	for i := range foldEvery / len(value) {
		require.NoError(t, s.Apply("b", Put(fmt.Sprint(i%4), value)))
	}
	require.Eventually(t, func() bool { return logRecords(t, s) == 0 }, 10*time.Second, time.Millisecond,
		"the folder folds once %d bytes are logged", foldEvery)
	require.NoError(t, s.Apply("b", Put("last", []byte("1"))))
	assert.Equal(t, 1, logRecords(t, s), "below foldEvery, the record waits")
	require.NoError(t, s.Close())

	rep, err := Check(dir)
	require.NoError(t, err)
	assert.Equal(t, 1, rep.LogRecords, "kv check counts the record")
	assert.Equal(t, 5, rep.Keys, "and the pair it adds")
	s = openT(t, dir, Options{Fsync: FsyncNo})
	assert.Zero(t, logRecords(t, s), "Open folded it")
	require.NoError(t, s.Close())
	rep, err = Check(dir)
	require.NoError(t, err)
	assert.Equal(t, 5, rep.Keys)
}

// A fold lost to a recovery (which cuts the WAL's unsynced tail) brings
// back the records it folded: they must still fold before the writes made
// after them. Here Open's fold of a crashed session's two records is cut,
// with the new session's acknowledged write, by a failed sync; the
// recovery replays that write, and the last value is the new one. (A
// review found the numbers starting again at 0 after Open: the replayed
// write then took the place of the old first record, and the old second
// one folded over it.)
func TestLogNumbersGoOnAfterOpen(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{Fsync: FsyncEverySec})
	require.NoError(t, s.Apply("b", Put("k", []byte("old0"))))
	require.NoError(t, s.Apply("b", Put("k", []byte("old1"))))
	crashClose(t, s)

	faults := &Faults{}
	s = openT(t, dir, Options{Fsync: FsyncEverySec, Faults: faults, RetryInterval: time.Millisecond, syncEvery: time.Hour})
	defer func() { require.NoError(t, s.Close()) }()
	require.NoError(t, s.Apply("b", Put("k", []byte("new"))), "acknowledged: written to the OS")
	faults.FailSyncs(fmt.Errorf("injected: %w", syscall.EIO))
	require.Error(t, s.syncNow())
	faults.Clear()
	var pairs map[string][]byte
	require.Eventually(t, func() bool {
		var err error
		pairs, _, err = s.Load("b") // recovers (once RetryInterval has passed), replays, folds
		return err == nil
	}, 10*time.Second, time.Millisecond)
	assert.Equal(t, "new", string(pairs["k"]), "the acknowledged write is the last")
}

// kv check counts what the log's records change, as the next start will
// fold them: pairs they add, replace or delete, and buckets they drop and
// create again.
func TestCheckCountsTheLog(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{Fsync: FsyncNo})
	require.NoError(t, s.Apply("a", Put("k1", []byte("1")), Put("k2", []byte("22"))))
	require.NoError(t, s.Apply("b", Put("x", []byte("x"))))
	require.NoError(t, s.Close())
	rep, err := Check(dir)
	require.NoError(t, err)
	assert.Equal(t, Report{Dir: dir, Opened: true, Buckets: 2, Keys: 3, Bytes: 3 + 4 + 2, LogRecords: 2}, rep, "all in the log")

	s = openT(t, dir, Options{Fsync: FsyncNo}) // folds
	require.NoError(t, s.DropBucket("a"))
	require.NoError(t, s.Apply("a", Put("k3", []byte("333"))))
	require.NoError(t, s.Apply("b", Put("x", []byte("xx")), Put("y", nil)))
	require.NoError(t, s.Apply("b", Delete("y")))
	require.NoError(t, s.Apply("c", Put("z", []byte("z"))))
	crashClose(t, s)
	rep, err = Check(dir)
	require.NoError(t, err)
	assert.Equal(t, Report{Dir: dir, Opened: true, Buckets: 3, Keys: 3, Bytes: 5 + 3 + 2, LogRecords: 5}, rep,
		"a: k3 only; b: x replaced, y deleted; c added")
}

// kv check reports a log record that holds a change kv never makes, as it
// reports such a key outside the log.
func TestCheckReportsABadLogRecord(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{Fsync: FsyncNo})
	require.NoError(t, s.Apply("a", Put("k", []byte("v"))))
	bad := s.db.NewBatch()
	require.NoError(t, bad.Set(appendPairKey(nil, "a", "k2"), []byte("x"), nil))
	require.NoError(t, bad.Set([]byte("\x09stray"), []byte("x"), nil))
	require.NoError(t, s.db.Set(logKey(1<<40), bad.Repr(), pebble.Sync))
	require.NoError(t, bad.Close())
	crashClose(t, s)
	rep, err := Check(dir)
	require.ErrorIs(t, err, ErrCorrupt)
	require.Len(t, rep.Problems, 1)
	assert.Contains(t, rep.Problems[0], `key "\tstray" has unknown tag 0x09`)
	assert.Equal(t, 1, rep.LogRecords, "the sound record")
	assert.Equal(t, 1, rep.Keys, "nothing of the damaged record, not even its sound first change")
}

// aChange is one change as eachChange reports it.
type aChange struct {
	kind       pebble.InternalKeyKind
	key, value string
}

func changesOf(record []byte) ([]aChange, error) {
	var out []aChange
	err := eachChange(record, func(kind pebble.InternalKeyKind, key, value []byte) error {
		out = append(out, aChange{kind, string(key), string(value)})
		return nil
	})
	return out, err
}

// aRecord returns the batch of the changes kv writes, as a log record holds it.
func aRecord(t testing.TB, s *Store) []byte {
	b := s.db.NewBatch()
	defer b.Close()
	require.NoError(t, b.Set([]byte("\x02k"), []byte("value"), nil))
	require.NoError(t, b.Delete([]byte("\x02gone"), nil))
	require.NoError(t, b.LogData(nil, nil))
	require.NoError(t, b.DeleteRange([]byte("\x02a"), []byte("\x02b"), nil))
	return slices.Clone(b.Repr())
}

func TestEachChangeReadsWhatPebbleWrote(t *testing.T) {
	s := openT(t, t.TempDir(), Options{Fsync: FsyncNo})
	defer s.Close()
	got, err := changesOf(aRecord(t, s))
	require.NoError(t, err)
	assert.Equal(t, []aChange{
		{pebble.InternalKeyKindSet, "\x02k", "value"},
		{pebble.InternalKeyKindDelete, "\x02gone", ""},
		{pebble.InternalKeyKindLogData, "", ""},
		{pebble.InternalKeyKindRangeDelete, "\x02a", "\x02b"},
	}, got)
}

// A damaged record is an error, never a panic: pebble's own reader indexes
// past the end of a truncated batch.
func TestEachChangeRejectsADamagedRecord(t *testing.T) {
	s := openT(t, t.TempDir(), Options{Fsync: FsyncNo})
	good := aRecord(t, s)
	require.NoError(t, s.Close())
	header := func(count uint32, body ...byte) []byte {
		r := make([]byte, 12, 12+len(body))
		binary.LittleEndian.PutUint32(r[8:], count)
		return append(r, body...)
	}
	withCount := func(r []byte, count uint32) []byte {
		r = slices.Clone(r)
		binary.LittleEndian.PutUint32(r[8:], count)
		return r
	}
	for _, tc := range []struct {
		name, record, err string
	}{
		{"shorter than a header", string(good[:11]), "not a batch"},
		{"a kind and nothing else", string(header(1, 1)), "the record ends before its length"},
		{"a varint cut short", string(header(1, 1, 0xff)), "the record ends before its length"},
		{"a key past the end", string(header(1, 1, 5, 'a', 'b')), "a length of 5 bytes where 2 are left"},
		{"a value missing", string(header(1, 1, 1, 'k')), "value: the record ends before its length"},
		{"a value past the end", string(header(1, 1, 1, 'k', 9, 'v')), "a length of 9 bytes where 1 are left"},
		{"an oversized length", string(header(1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)), "a length out of range"},
		{"a kind kv never writes", string(header(1, 2, 1, 'k', 1, 'v')), "unexpected kind"},
		{"cut between two changes", string(good[:len(good)-7]), "changes where the batch's header says"},
		{"a count that lies", string(withCount(good, 7)), "3 changes where the batch's header says 7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := changesOf([]byte(tc.record))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.err)
		})
	}
}

// FuzzEachChange: no input panics the log's decoder, and what it accepts
// it reads back the same once written again by pebble.
func FuzzEachChange(f *testing.F) {
	s := openT(f, f.TempDir(), Options{Fsync: FsyncNo})
	defer s.Close()
	good := aRecord(f, s)
	f.Add(good)
	f.Add(good[:len(good)-3])
	f.Add(append(make([]byte, 12), 1))
	f.Add(append(slices.Clone(good[:12]), 0x01, 0xff))
	f.Fuzz(func(t *testing.T, record []byte) {
		got, err := changesOf(record)
		if err != nil {
			return
		}
		b := s.db.NewBatch()
		defer b.Close()
		for _, c := range got {
			switch c.kind {
			case pebble.InternalKeyKindSet:
				require.NoError(t, b.Set([]byte(c.key), []byte(c.value), nil))
			case pebble.InternalKeyKindDelete:
				require.NoError(t, b.Delete([]byte(c.key), nil))
			case pebble.InternalKeyKindLogData:
				require.NoError(t, b.LogData([]byte(c.key), nil))
			case pebble.InternalKeyKindRangeDelete:
				require.NoError(t, b.DeleteRange([]byte(c.key), []byte(c.value), nil))
			default:
				t.Fatalf("eachChange passed on a change of kind %v", c.kind)
			}
		}
		again, err := changesOf(b.Repr())
		require.NoError(t, err)
		require.Equal(t, got, again)
	})
}

// The cover index answers as a scan of every range deletion would: the
// last one that covers the key, over random, overlapping, nested, empty
// and repeated ranges.
func TestCoverIndexMatchesAScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	word := func() []byte {
		b := make([]byte, rng.IntN(3))
		for i := range b {
			b[i] = "abc"[rng.IntN(3)]
		}
		return b
	}
	for round := range 300 {
		ranges := make([]logRange, rng.IntN(12))
		for i := range ranges {
			ranges[i] = logRange{at: rng.IntN(40), start: word(), end: word()}
		}
		idx := newCoverIndex(ranges)
		for range 50 {
			k := word()
			want := -1
			for _, r := range ranges {
				if r.at > want && bytes.Compare(k, r.start) >= 0 && bytes.Compare(k, r.end) < 0 {
					want = r.at
				}
			}
			require.Equal(t, want, idx.last(k), "round %d, key %q, ranges %v", round, k, ranges)
		}
	}
}
