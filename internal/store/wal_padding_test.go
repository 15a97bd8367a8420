package store

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// openWAL opens a new store in dir with opts. With syncChunks its WAL
// uses pebble's sync chunks (19-byte headers), as every store's does;
// without, it is the WAL pebble makes first for a new store, without them
// (Open reopens a new store to leave it; the tests of such logs, which a
// store made before that writes too, keep it).
func openWAL(t *testing.T, dir string, opts Options, syncChunks bool) *Store {
	t.Helper()
	opts.plainFirstWAL = !syncChunks
	return openT(t, dir, opts)
}

// padFirstBlock writes to s, whose data directory is dir, until pad bytes
// of the WAL's first block are left: a small write, one of 1,000 bytes that
// tells a write's overhead, then one of the size that leaves pad bytes
// ("t", of "y"s), whose size it returns.
func padFirstBlock(t *testing.T, s *Store, dir string, pad int) int {
	t.Helper()
	require.NoError(t, s.Apply("b", Put("a", []byte("v"))))
	_, p0 := walSize(t, dir)
	require.NoError(t, s.Apply("b", Put("t", []byte(strings.Repeat("x", 1000)))))
	_, p1 := walSize(t, dir)
	overhead := p1 - p0 - 1000
	v := int(walBlockSize - int64(pad) - p1 - overhead)
	if v >= 16384 {
		v-- // one more byte of length
	}
	require.Greater(t, v, 200)
	require.NoError(t, s.Apply("b", Put("t", []byte(strings.Repeat("y", v)))))
	return v
}

func walSize(t *testing.T, dir string) (string, int64) {
	wals := filesLike(t, dir, "*.log")
	last := wals[len(wals)-1]
	fi, err := os.Stat(last)
	require.NoError(t, err)
	return last, fi.Size()
}

// Regression tests from a review: the WAL's end is found where pebble finds
// it, across the zeros a writer pads a block's end with (below its 11- or
// 19-byte header).

// A torn tail whose last whole write is the first of a block that began
// after the writer padded the end of the previous block is a torn tail,
// not damage: Open must recover it.
func TestTornTailAfterBlockPadding(t *testing.T) {
	for _, c := range []struct {
		pad    int
		reopen bool
	}{{5, false}, {5, true}, {15, true}} {
		pad := c.pad
		t.Run(fmt.Sprint("pad ", pad, " reopened ", c.reopen), func(t *testing.T) {
			dir := t.TempDir()
			s := openWAL(t, dir, Options{Fsync: FsyncAlways}, c.reopen)
			defer s.Close()
			padFirstBlock(t, s, dir, pad)
			_, p2 := walSize(t, dir)
			require.Equal(t, int64(32768), p2, "the block is padded")
			require.NoError(t, s.Apply("b", Put("k1", []byte("first of block 1"))))
			require.NoError(t, s.Apply("b", Put("k2", []byte("torn"))))
			crashed := copyDir(t, dir)
			last, size := walSize(t, crashed)
			require.NoError(t, os.Truncate(last, size-3)) // cut into the last write

			logs := &logBuffer{}
			s2, err := Open(crashed, Options{Logger: logs.logger()})
			require.NoError(t, err, "a torn tail must not stop the start")
			defer s2.Close()
			pairs, _, err := s2.Load("b")
			require.NoError(t, err)
			require.Contains(t, pairs, "k1")
			require.NotContains(t, pairs, "k2")
		})
	}
}

// The same with a torn write over several blocks after a padded block end
// of 11..18 bytes (pebble pads below its 19-byte sync-chunk header, not
// below 11): the last whole write is not the first of its block.
func TestTornBigWriteAfterSyncChunkPadding(t *testing.T) {
	dir := t.TempDir()
	s := openWAL(t, dir, Options{Fsync: FsyncAlways}, true)
	defer s.Close()
	v := padFirstBlock(t, s, dir, 15)
	_, p2 := walSize(t, dir)
	require.Equal(t, int64(32768), p2)
	require.NoError(t, s.Apply("b", Put("big", []byte(strings.Repeat("z", 100<<10)))))
	crashed := copyDir(t, dir)
	last, size := walSize(t, crashed)
	require.NoError(t, os.Truncate(last, size-100))
	s2, err := Open(crashed, Options{})
	require.NoError(t, err, "a torn tail must not stop the start")
	defer s2.Close()
	pairs, _, err := s2.Load("b")
	require.NoError(t, err)
	require.NotContains(t, pairs, "big")
	require.Len(t, pairs["t"], v)
}

// No torn write at all: after a kill, the newest WAL is a recycled file, so
// an older log's chunks follow the last write (simulated by appending one).
func TestRecycledEndAfterBlockPadding(t *testing.T) {
	for _, pad := range []int{5, 300} {
		t.Run(fmt.Sprint(pad), func(t *testing.T) {
			dir := t.TempDir()
			s := openT(t, dir, Options{Fsync: FsyncAlways})
			defer s.Close()
			padFirstBlock(t, s, dir, pad)
			_, p3 := walSize(t, dir)
			if p3%32768 != 0 && 32768-p3%32768 < 19 {
				p3 += 32768 - p3%32768
			}
			require.NoError(t, s.Apply("b", Put("k1", []byte("first of block 1"))))
			crashed := copyDir(t, dir)
			last, size := walSize(t, crashed)
			data, err := os.ReadFile(last)
			require.NoError(t, err)
			old := append([]byte(nil), data[p3:size]...) // the last chunk of this log...
			old[7]--                                     // ...as an older log's (number - 1) left it
			require.NoError(t, os.WriteFile(last, append(data, old...), 0o644))

			s2, err := Open(crashed, Options{})
			require.NoError(t, err, "a recycled WAL's end is clean")
			defer s2.Close()
			pairs, _, err := s2.Load("b")
			require.NoError(t, err)
			require.Contains(t, pairs, "k1")
		})
	}
}

// Whatever byte a crash cuts the newest WAL at, the store opens with a
// prefix of the writes: a cut is never taken for damage, with or without
// pebble's sync chunks, across writes of every size (block padding, writes
// over several blocks).
func TestEveryCutOfTheWALIsATornTail(t *testing.T) {
	for _, reopened := range []bool{false, true} {
		t.Run(fmt.Sprint("sync chunks ", reopened), func(t *testing.T) {
			dir := t.TempDir()
			s := openWAL(t, dir, Options{Fsync: FsyncAlways}, reopened)
			defer s.Close()
			rng := rand.New(rand.NewPCG(7, 8))
			const writes = 120
			for i := range writes {
				n := []int{1, 30, 500, 5000, 40000}[rng.IntN(5)] + rng.IntN(100)
				require.NoError(t, s.Apply("b", Put(fmt.Sprintf("k%03d", i), []byte(strings.Repeat("v", n)))))
			}
			crashed := copyDir(t, dir)
			last, size := walSize(t, crashed)
			data, err := os.ReadFile(last)
			require.NoError(t, err)
			for range 40 {
				cut := rng.Int64N(size)
				require.NoError(t, os.WriteFile(last, data[:cut], 0o644))
				_, err := inspectNewestWAL(crashed)
				require.NoError(t, err, "cut at byte %d of %d", cut, size)
				s2, err := Open(crashed, Options{})
				require.NoError(t, err, "cut at byte %d of %d", cut, size)
				pairs, _, err := s2.Load("b")
				require.NoError(t, err)
				for i := range len(pairs) {
					require.Contains(t, pairs, fmt.Sprintf("k%03d", i), "a prefix of the writes (cut at %d)", cut)
				}
				require.NoError(t, s2.Close())
				_ = os.RemoveAll(filepath.Join(crashed, "damaged"))
				// Reopening rewrote the directory: start each cut from the crash copy.
				crashed = copyDir(t, dir)
				last, _ = walSize(t, crashed)
			}
		})
	}
}
