package store

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func fakeSyncChunk(logNum uint32, synced uint64) []byte {
	payload := []byte("x")
	c := make([]byte, 19+len(payload))
	binary.LittleEndian.PutUint16(c[4:6], uint16(len(payload)))
	c[6] = 9
	binary.LittleEndian.PutUint32(c[7:11], logNum)
	binary.LittleEndian.PutUint64(c[11:19], synced)
	copy(c[19:], payload)
	binary.LittleEndian.PutUint32(c[0:4], chunkSum(c))
	return c
}

// A client's value may hold bytes shaped like chunks of the current log
// (a review forged sync chunks claiming the log was synced far past the
// cut): a crash that tears the write holding it is still a torn tail, as
// kv looks for later writes only where a chunk must start.
func TestForgedChunkInATornValue(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{Fsync: FsyncAlways})
	defer s.Close()
	require.NoError(t, s.Apply("b", Put("a", []byte("v"))))
	last, _ := walSize(t, dir)
	n, err := strconv.Atoi(strings.TrimSuffix(filepath.Base(last), ".log"))
	require.NoError(t, err)
	var v []byte
	for ln := uint32(1); ln < 50; ln++ { // no need to know the number
		v = append(v, fakeSyncChunk(ln, 1<<40)...)
	}
	v = append(v, strings.Repeat("p", 200)...)
	_ = n
	require.NoError(t, s.Apply("b", Put("evil", v)))
	crashed := copyDir(t, dir)
	last, size := walSize(t, crashed)
	require.NoError(t, os.Truncate(last, size-3)) // an ordinary crash: torn last write
	end, err := inspectNewestWAL(crashed)
	require.NoError(t, err)
	require.NotNil(t, end)
	require.Zero(t, end.later, "a torn tail, not damage")
	s2, err := Open(crashed, Options{})
	require.NoError(t, err, "an ordinary crash must not be refused")
	require.NoError(t, s2.Close())
}

// Under everysec and no, kv defers the WAL's fsync and tells pebble its
// syncs succeeded; pebble writes in each chunk how far it believes the log
// synced, and refuses a log whose unreadable part a later chunk claims was
// synced. A power cut that loses a page of the unsynced tail (the OS wrote
// a later page first) must not stop the start: kv writes the true synced
// offset in those chunks. 60 writes end in the block of the hole; 300 go
// on two blocks further, where pebble refused before kv wrote the truth.
func TestHoleInTheUnsyncedTailDoesNotStopTheStart(t *testing.T) {
	for _, policy := range []Fsync{FsyncEverySec, FsyncNo} {
		for _, writes := range []int{60, 300} {
			t.Run(fmt.Sprint(policy, "/", writes), func(t *testing.T) {
				holeInTheUnsyncedTail(t, policy, writes)
			})
		}
	}
}

func holeInTheUnsyncedTail(t *testing.T, policy Fsync, writes int) {
	dir := t.TempDir()
	s := openWAL(t, dir, Options{Fsync: policy, syncEvery: time.Hour}, true)
	defer s.Close()
	for i := range writes {
		require.NoError(t, s.Apply("b", Put(fmt.Sprint("k", i), []byte(strings.Repeat("v", 300)))))
	}
	crashed := copyDir(t, dir)
	last, _ := walSize(t, crashed)
	data, err := os.ReadFile(last)
	require.NoError(t, err)
	for i := 8192; i < 12288; i++ { // a page that never reached the disk
		data[i] = 0
	}
	require.NoError(t, os.WriteFile(last, data, 0o644))
	s2, err := Open(crashed, Options{})
	require.NoError(t, err, "a power cut within everysec's unsynced second must not stop the start")
	pairs, _, err := s2.Load("b")
	require.NoError(t, err)
	assert.NotEmpty(t, pairs)
	require.NoError(t, s2.Close())
}
