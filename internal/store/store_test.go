package store

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kvproject/kv/internal/testlog"
)

func TestMain(m *testing.M) {
	// A re-executed test binary plays a child process (crash and lock
	// tests); see child_test.go.
	if runChild() {
		return
	}
	goleak.VerifyTestMain(m)
}

// logBuffer collects log lines for tests to search.
type logBuffer struct{ testlog.Buffer }

func (l *logBuffer) logger() *slog.Logger { return l.Logger(slog.LevelInfo) }

func openT(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(dir, opts)
	require.NoError(t, err)
	return s
}

// checkAcrossRestart runs check on s, closes s, and runs check again on
// the store reopened from dir under policy.
func checkAcrossRestart(t *testing.T, s *Store, dir string, policy Fsync, check func(*Store)) {
	t.Helper()
	check(s)
	require.NoError(t, s.Close())
	s = openT(t, dir, Options{Fsync: policy})
	defer func() { require.NoError(t, s.Close()) }()
	check(s)
}

// loadAll returns everything in s as bucket -> pairs.
func loadAll(t testing.TB, s *Store) map[string]map[string][]byte {
	t.Helper()
	all := make(map[string]map[string][]byte)
	require.NoError(t, s.LoadAll(func(name string, pairs map[string][]byte) error {
		_, dup := all[name]
		require.False(t, dup, "bucket %q emitted twice", name)
		all[name] = pairs
		return nil
	}))
	return all
}

func TestParseFsync(t *testing.T) {
	for _, f := range []Fsync{FsyncAlways, FsyncEverySec, FsyncNo} {
		got, err := ParseFsync(f.String())
		require.NoError(t, err)
		assert.Equal(t, f, got)
	}
	_, err := ParseFsync("sometimes")
	assert.ErrorContains(t, err, `"sometimes"`)
	var zero Options
	assert.Equal(t, FsyncEverySec, zero.Fsync, "the zero value is everysec")
}

func TestRoundTripAcrossRestart(t *testing.T) {
	for _, policy := range []Fsync{FsyncAlways, FsyncEverySec, FsyncNo} {
		t.Run(policy.String(), func(t *testing.T) {
			dir := t.TempDir()
			s := openT(t, dir, Options{Fsync: policy})
			require.NoError(t, s.CreateBucket("empty"))
			require.NoError(t, s.Apply("a", Put("k1", []byte("v1")), Put("k2", []byte("v2"))))
			require.NoError(t, s.Apply("a", Delete("k2"), Put("k3", []byte{})))
			w, err := s.ApplyNoWait("b", Put("x", []byte("y")))
			require.NoError(t, err)
			require.NoError(t, w.Wait())
			require.NoError(t, s.Close())
			assert.ErrorIs(t, s.Close(), ErrClosed)
			assert.ErrorIs(t, s.Apply("a", Put("k", nil)), ErrClosed)

			s = openT(t, dir, Options{Fsync: policy})
			defer s.Close()
			all := loadAll(t, s)
			assert.Equal(t, map[string]map[string][]byte{
				"empty": {},
				"a":     {"k1": []byte("v1"), "k3": []byte{}},
				"b":     {"x": []byte("y")},
			}, all)
			pairs, found, err := s.Load("a")
			require.NoError(t, err)
			assert.True(t, found)
			assert.Equal(t, all["a"], pairs)
			_, found, err = s.Load("nope")
			require.NoError(t, err)
			assert.False(t, found)
		})
	}
}

// Names and keys are arbitrary bytes: names that are prefixes of each other,
// hold 0x00 or 0xff, or look like a name followed by a key, never mix.
func TestBinaryNamesDoNotCollide(t *testing.T) {
	s := openT(t, t.TempDir(), Options{Fsync: FsyncNo})
	defer s.Close()
	want := map[string]map[string][]byte{}
	names := []string{"a", "ab", "a\x00", "a\x00b", "\xff", "\xff\xff", "\x00", "b", string(make([]byte, 300))}
	for i, n := range names {
		pairs := map[string][]byte{
			"":         []byte(fmt.Sprint(i)),
			"b":        []byte("b" + fmt.Sprint(i)),
			"\x00":     {0, byte(i)},
			"\xff\x01": {0xff},
		}
		var ops []Op
		for k, v := range pairs {
			ops = append(ops, Put(k, v))
		}
		require.NoError(t, s.Apply(n, ops...))
		want[n] = pairs
	}
	assert.Equal(t, want, loadAll(t, s))
	for _, n := range names {
		p, found, err := s.Load(n)
		require.NoError(t, err)
		require.True(t, found)
		assert.Equal(t, want[n], p, "bucket %q", n)
	}

	// Dropping "a" leaves "ab", "a\x00" and the rest whole.
	require.NoError(t, s.DropBucket("a"))
	delete(want, "a")
	assert.Equal(t, want, loadAll(t, s))
	var listed []string
	require.NoError(t, s.Buckets(func(name string) error { listed = append(listed, name); return nil }))
	var wantNames []string
	for n := range want {
		wantNames = append(wantNames, n)
	}
	sort.Strings(listed)
	sort.Strings(wantNames)
	assert.Equal(t, wantNames, listed)
}

func TestDropBucketAndDropAll(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{Fsync: FsyncAlways})
	require.NoError(t, s.Apply("a", Put("k", []byte("v"))))
	require.NoError(t, s.Apply("b", Put("k", []byte("v"))))
	require.NoError(t, s.CreateBucket("c"))
	require.NoError(t, s.DropBucket("a"))
	require.NoError(t, s.DropBucket("never existed"))
	st, err := s.Stats()
	require.NoError(t, err)
	assert.Equal(t, 2, st.Buckets)
	assert.Equal(t, 1, st.Keys)
	assert.Equal(t, int64(2), st.Bytes)
	assert.NotZero(t, st.DiskBytes)

	// A dropped bucket that is written again starts empty.
	require.NoError(t, s.Apply("a", Put("k2", []byte("v2"))))
	p, _, err := s.Load("a")
	require.NoError(t, err)
	assert.Equal(t, map[string][]byte{"k2": []byte("v2")}, p)

	require.NoError(t, s.DropAll())
	assert.Empty(t, loadAll(t, s))
	require.NoError(t, s.Close())
	s = openT(t, dir, Options{})
	defer s.Close()
	assert.Empty(t, loadAll(t, s), "FLUSHALL survives a restart")
}

func TestLoadAllStopsOnError(t *testing.T) {
	s := openT(t, t.TempDir(), Options{Fsync: FsyncNo})
	defer s.Close()
	require.NoError(t, s.Apply("a", Put("k", nil)))
	require.NoError(t, s.Apply("b", Put("k", nil)))
	stop := fmt.Errorf("stop")
	n := 0
	err := s.LoadAll(func(string, map[string][]byte) error { n++; return stop })
	assert.ErrorIs(t, err, stop)
	assert.Equal(t, 1, n)
}

// Values handed out by Load are the caller's: appending to one does not
// write over its neighbour in the shared slab.
func TestLoadedValuesAreIndependent(t *testing.T) {
	s := openT(t, t.TempDir(), Options{Fsync: FsyncNo})
	defer s.Close()
	require.NoError(t, s.Apply("a", Put("1", []byte("one")), Put("2", []byte("two"))))
	p, _, err := s.Load("a")
	require.NoError(t, err)
	_ = append(p["1"], "XXXX"...)
	assert.Equal(t, []byte("two"), p["2"])
}

func TestConcurrentWriters(t *testing.T) {
	for _, policy := range []Fsync{FsyncAlways, FsyncEverySec} {
		t.Run(policy.String(), func(t *testing.T) {
			dir := t.TempDir()
			s := openT(t, dir, Options{Fsync: policy})
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Go(func() {
					for i := range 50 {
						assert.NoError(t, s.Apply(fmt.Sprint("b", g%3), Put(fmt.Sprint(g, "-", i), []byte(fmt.Sprint(i)))))
					}
				})
			}
			wg.Wait()
			require.NoError(t, s.Close())
			s = openT(t, dir, Options{Fsync: policy})
			defer s.Close()
			st, err := s.Stats()
			require.NoError(t, err)
			assert.Equal(t, 3, st.Buckets)
			assert.Equal(t, 400, st.Keys)
		})
	}
}

func TestOpenCreatesNestedDirAndResolvesLinks(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "x", "y")
	s := openT(t, dir, Options{})
	require.NoError(t, s.Close())
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	assert.True(t, fi.IsDir())
}

// A batch larger than half the memtable takes pebble's large-batch path,
// which clears the batch's data after the commit.
func TestLargeBatch(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 33 MB")
	}
	dir := t.TempDir()
	s := openT(t, dir, Options{Fsync: FsyncEverySec})
	big := bytes.Repeat([]byte("x"), 33<<20) // the threshold is half of the 64 MiB memtable
	require.NoError(t, s.Apply("big", Put("k", big)))
	require.NoError(t, s.Apply("big", Put("small", []byte("v"))))
	require.NoError(t, s.Close())
	s = openT(t, dir, Options{})
	defer s.Close()
	p, _, err := s.Load("big")
	require.NoError(t, err)
	assert.Equal(t, len(big), len(p["k"]))
	assert.Equal(t, []byte("v"), p["small"])
}

func TestMove(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{Fsync: FsyncAlways})
	require.NoError(t, s.Apply("from", Put("a", []byte("1")), Put("b", []byte("2"))))
	require.NoError(t, s.Apply("to", Put("old", []byte("x"))))
	require.NoError(t, s.Apply("fro", Put("a", []byte("kept"))))
	w, err := s.Move("from", "to", map[string][]byte{"a": []byte("1"), "b": []byte("2")})
	require.NoError(t, err)
	require.NoError(t, w.Wait())
	require.NoError(t, s.Close())
	s = openT(t, dir, Options{})
	defer s.Close()
	assert.Equal(t, map[string]map[string][]byte{
		"to":  {"a": []byte("1"), "b": []byte("2")},
		"fro": {"a": []byte("kept")},
	}, loadAll(t, s))
}

// ApplyPairsNoWait writes pairs to a recorded bucket without its marker:
// they load as any others; to a bucket that is not recorded they are not
// found, and Check reports them.
func TestApplyPairsNoWait(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{Fsync: FsyncAlways})
	require.NoError(t, s.CreateBucket("b"))
	w, err := s.ApplyPairsNoWait("b", Put("k", []byte("v")), Put("gone", []byte("x")), Delete("gone"))
	require.NoError(t, err)
	require.NoError(t, w.Wait())
	w, err = s.ApplyPairsNoWait("unrecorded", Put("k", []byte("v")))
	require.NoError(t, err)
	require.NoError(t, w.Wait())
	pairs, found, err := s.Load("b")
	require.NoError(t, err)
	assert.True(t, found)
	assert.Equal(t, map[string][]byte{"k": []byte("v")}, pairs)
	found, err = s.Has("unrecorded")
	require.NoError(t, err)
	assert.False(t, found)
	require.NoError(t, s.Close())
	rep, err := Check(dir)
	require.Error(t, err)
	assert.Equal(t, 1, rep.ProblemCount)
}

// WaitOrUndo gathered, as an event loop calls it once it has made every write of
// a wake-up: the first call commits them all as one group, each is durable
// under the policy, and a failed sync is reported to each.
func TestWaitOrUndoGathered(t *testing.T) {
	for _, policy := range []Fsync{FsyncAlways, FsyncEverySec, FsyncNo} {
		t.Run(policy.String(), func(t *testing.T) {
			dir := t.TempDir()
			faults := &Faults{}
			s := openT(t, dir, Options{Fsync: policy, Faults: faults, RetryInterval: time.Hour})
			before := s.logNext
			var ws []Waiter
			for i := range 50 {
				w, err := s.ApplyNoWait("b", Put(fmt.Sprint("k", i), []byte("v")))
				require.NoError(t, err)
				ws = append(ws, w)
			}
			for _, w := range ws {
				require.NoError(t, w.WaitOrUndo(true, nil))
			}
			assert.Equal(t, before+1, s.logNext, "one group, one commit")
			if policy == FsyncAlways {
				faults.FailSyncs(syscall.EIO)
				w, err := s.ApplyNoWait("b", Put("lost", []byte("v")))
				require.NoError(t, err)
				require.ErrorIs(t, w.WaitOrUndo(true, nil), ErrWriteFailed)
				faults.Clear()
				_ = s.Close()
			} else {
				require.NoError(t, s.Close())
			}
			s = openT(t, dir, Options{})
			defer s.Close()
			pairs, _, err := s.Load("b")
			require.NoError(t, err)
			assert.Len(t, pairs, 50)
		})
	}
}
