package store

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// walChunks returns the offsets of the chunks of log logNum in data, read
// from its start as pebble writes them.
func walChunks(t *testing.T, data []byte, logNum uint32) []int64 {
	t.Helper()
	var offs []int64
	for pos := int64(0); pos < int64(len(data)); {
		if left := walBlockSize - pos%walBlockSize; left < walSyncHeader && zeros(data[pos:min(pos+left, int64(len(data)))]) {
			pos += left
			continue
		}
		c, ok := chunkAt(data, pos)
		if !ok || c.logNum != logNum {
			break
		}
		offs = append(offs, pos)
		pos += int64(c.size)
	}
	return offs
}

func walNum(t *testing.T, path string) uint32 {
	t.Helper()
	n, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(path), ".log"), 10, 32)
	require.NoError(t, err)
	return uint32(n)
}

// crashedWAL returns the newest WAL of crashed, its bytes and the offsets
// of its chunks.
func crashedWAL(t *testing.T, crashed string) (wal string, data []byte, chunks []int64) {
	t.Helper()
	wal, _ = walSize(t, crashed)
	data, err := os.ReadFile(wal)
	require.NoError(t, err)
	return wal, data, walChunks(t, data, walNum(t, wal))
}

// requireKeptCopy checks that the start kept one copy of the WAL, holding
// want, under crashed/damaged.
func requireKeptCopy(t *testing.T, crashed string, want []byte) {
	t.Helper()
	copies := filesLike(t, filepath.Join(crashed, "damaged"), "*.log.*")
	require.Len(t, copies, 1, "a copy of the WAL is kept")
	kept, err := os.ReadFile(copies[0])
	require.NoError(t, err)
	assert.Equal(t, want, kept)
}

// sameBlockStore writes writes small writes under policy (all in the WAL's
// first block) and returns a crash copy of its directory, its newest WAL,
// the WAL's bytes and the offsets of its chunks.
func sameBlockStore(t *testing.T, policy Fsync, writes int) (crashed, wal string, data []byte, chunks []int64) {
	t.Helper()
	dir := t.TempDir()
	s := openT(t, dir, Options{Fsync: policy, syncEvery: time.Hour})
	for i := range writes {
		require.NoError(t, s.Apply("b", Put(fmt.Sprint("k", i), []byte(strings.Repeat("v", 100)))))
	}
	crashed = copyDir(t, dir)
	require.NoError(t, s.Close())
	wal, data, chunks = crashedWAL(t, crashed)
	require.Less(t, len(data), walBlockSize, "every write in the first block")
	require.GreaterOrEqual(t, len(chunks), writes)
	return crashed, wal, data, chunks
}

// Damage in the middle of the WAL's last block, with whole writes of the
// log after it in the same block, is damage, as it is when those writes
// are in a later block: under FsyncAlways a later chunk says the log was
// synced past it, and the start is refused, naming the file and the
// truncate that keeps the writes before it; Check reports it.
func TestDamageInTheLastBlockWithLaterSyncedWrites(t *testing.T) {
	crashed, wal, data, chunks := sameBlockStore(t, FsyncAlways, 20)
	bad := chunks[len(chunks)/2]
	data[bad+walSyncHeader+3] ^= 0x5a // in the payload: the header, and its length, intact
	require.NoError(t, os.WriteFile(wal, data, 0o644))

	end, err := inspectNewestWAL(crashed)
	require.NoError(t, err)
	require.NotNil(t, end)
	assert.Equal(t, bad, end.cut)
	assert.Positive(t, end.later, "the whole writes after the damage, in the same block")

	_, err = Check(crashed)
	require.ErrorIs(t, err, ErrCorrupt, "check reports it")
	assert.ErrorContains(t, err, wal)

	logs := &logBuffer{}
	_, err = Open(crashed, Options{Logger: logs.logger()})
	require.ErrorIs(t, err, ErrCorrupt, "the log was synced past the damage: not a torn tail")
	assert.ErrorContains(t, err, wal)
	assert.ErrorContains(t, err, fmt.Sprintf("truncate -s %d", bad))
	assert.NotContains(t, logs.String(), "torn write")

	// The way out the error gives works: the writes before the damage.
	require.NoError(t, os.Truncate(wal, bad))
	s := openT(t, crashed, Options{})
	defer s.Close()
	pairs, _, err := s.Load("b")
	require.NoError(t, err)
	assert.NotEmpty(t, pairs)
	assert.Less(t, len(pairs), 20)
	for i := range len(pairs) {
		assert.Contains(t, pairs, fmt.Sprint("k", i))
	}
}

// The same damage in a log not synced past it (FsyncEverySec before its
// first background fsync: a power cut's hole in the unsynced tail looks
// alike) does not stop the start, but is not taken for a torn tail either:
// an error line, a copy of the file, and Check reports it.
func TestDamageInTheLastBlockOfTheUnsyncedTail(t *testing.T) {
	crashed, wal, data, chunks := sameBlockStore(t, FsyncEverySec, 20)
	bad := chunks[len(chunks)/2]
	data[bad+walSyncHeader+3] ^= 0x5a
	require.NoError(t, os.WriteFile(wal, data, 0o644))

	_, err := Check(crashed)
	require.ErrorIs(t, err, ErrCorrupt, "check reports it")

	logs := &logBuffer{}
	s, err := Open(crashed, Options{Logger: logs.logger()})
	require.NoError(t, err, "nothing says the log was synced past the damage")
	defer s.Close()
	assert.Contains(t, logs.String(), "unreadable before its end")
	assert.NotContains(t, logs.String(), "torn write")
	requireKeptCopy(t, crashed, data)
}

// A torn last write whose header reached the disk but not all of its
// payload (a power cut: zeros where the rest should be) is a torn tail: the
// start goes on with a warning. So is a crash that cut the file inside it.
func TestTornTailInTheLastBlockIsStillATornTail(t *testing.T) {
	for _, policy := range []Fsync{FsyncAlways, FsyncEverySec} {
		t.Run(policy.String(), func(t *testing.T) {
			crashed, wal, data, chunks := sameBlockStore(t, policy, 20)
			last := chunks[len(chunks)-1]
			for i := last + walSyncHeader + 10; i < int64(len(data)); i++ {
				data[i] = 0
			}
			require.NoError(t, os.WriteFile(wal, data, 0o644))

			end, err := inspectNewestWAL(crashed)
			require.NoError(t, err)
			require.NotNil(t, end)
			assert.Zero(t, end.later)
			_, err = Check(crashed)
			require.NoError(t, err)
			logs := &logBuffer{}
			s, err := Open(crashed, Options{Logger: logs.logger()})
			require.NoError(t, err)
			pairs, _, err := s.Load("b")
			require.NoError(t, err)
			assert.Len(t, pairs, 19)
			require.NoError(t, s.Close())
			assert.Contains(t, logs.String(), "torn write")
			assert.NotContains(t, logs.String(), "unreadable before its end")
		})
	}
}

// Damage to a chunk's header (its kind or its log number) in the middle of
// the WAL, with whole writes of the log in later blocks, is not a clean end:
// it is reported as damage in a later block is.
func TestDamagedChunkHeaderIsNotACleanEnd(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{Fsync: FsyncEverySec, syncEvery: time.Hour})
	for i := range 300 {
		require.NoError(t, s.Apply("b", Put(fmt.Sprint("k", i), []byte(strings.Repeat("v", 300)))))
	}
	crashed := copyDir(t, dir)
	require.NoError(t, s.Close())
	wal, data, chunks := crashedWAL(t, crashed)
	require.Greater(t, chunks[len(chunks)-1], int64(2*walBlockSize))
	bad := chunks[10]
	data[bad+6] = 0x7f // no kind of chunk
	require.NoError(t, os.WriteFile(wal, data, 0o644))

	_, err := Check(crashed)
	require.ErrorIs(t, err, ErrCorrupt, "check reports it")
	logs := &logBuffer{}
	s, err = Open(crashed, Options{Logger: logs.logger()})
	require.NoError(t, err)
	defer s.Close()
	assert.Contains(t, logs.String(), "unreadable before its end")
}

// Under FsyncAlways every write is synced before the next one is written,
// and the next one's chunks say so (kv writes there how far the log is
// synced, where pebble's own count leaves out every block it wrote whole,
// and fell far behind once writes span blocks): damage to the payload of any write but
// the last is refused at the start, wherever the later writes lie (the same
// block, where kv looks, or a later one, where pebble does), and Check
// reports it.
func TestDamageBeforeASyncedWriteIsAlwaysRefused(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{Fsync: FsyncAlways})
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 150 {
		n := []int{1, 30, 300, 3000, 40000}[rng.IntN(5)]
		require.NoError(t, s.Apply("b", Put(fmt.Sprintf("k%03d", i), []byte(strings.Repeat("v", n)))))
	}
	require.NoError(t, s.Apply("b", Put("last", []byte("v"))))
	crashed := copyDir(t, dir)
	require.NoError(t, s.Close())
	_, data, chunks := crashedWAL(t, crashed)
	for range 25 {
		i := rng.IntN(len(chunks) - 1) // not the last write's chunk
		c, ok := chunkAt(data, chunks[i])
		require.True(t, ok)
		hdr := walRecyclableHeader
		if c.sync {
			hdr = walSyncHeader
		}
		if c.size == hdr {
			continue // no payload to damage
		}
		at := chunks[i] + int64(hdr) + rng.Int64N(int64(c.size-hdr))
		damaged := slices.Clone(data)
		damaged[at] ^= 0x20
		work := copyDir(t, crashed)
		w, _ := walSize(t, work)
		require.NoError(t, os.WriteFile(w, damaged, 0o644))
		_, err := Check(work)
		require.ErrorIs(t, err, ErrCorrupt, "check: damage at byte %d, in the chunk at %d", at, chunks[i])
		logs := &logBuffer{}
		s2, err := Open(work, Options{Logger: logs.logger()})
		if err == nil {
			require.NoError(t, s2.Close())
		}
		require.ErrorIs(t, err, ErrCorrupt, "open: damage at byte %d, in the chunk at %d (same block as the next: %v): %s",
			at, chunks[i], chunks[i]/walBlockSize == chunks[i+1]/walBlockSize, logs)
	}
}
