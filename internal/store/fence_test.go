package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/record"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFaultUnderLoad fails the disk under 32 concurrent writers of 100 KiB
// values, enough for pebble to rotate its memtable and WAL, and to stall
// writers on memtables it cannot flush, while the fault lasts. Before the
// fence kept pebble's I/O in memory, pebble panicked rotating a WAL whose
// write had failed (every run), and a writer stalled on a flush that kept
// failing blocked the engine's Close, and recovery with it. Every write
// acknowledged must be in the store afterwards, and no write reported as
// failed.
func TestFaultUnderLoad(t *testing.T) {
	inject := map[string]func(*Faults){
		"writes": func(f *Faults) { f.FailWrites(fmt.Errorf("injected: %w", syscall.ENOSPC)) },
		"syncs":  func(f *Faults) { f.FailSyncs(fmt.Errorf("injected: %w", syscall.EIO)) },
	}
	for _, policy := range []Fsync{FsyncAlways, FsyncEverySec} {
		for what, fail := range inject {
			t.Run(policy.String()+"/"+what, func(t *testing.T) {
				dir := t.TempDir()
				faults := &Faults{}
				logs := &logBuffer{}
				s := openT(t, dir, Options{Fsync: policy, Faults: faults, Logger: logs.logger(),
					RetryInterval: 5 * time.Millisecond, syncEvery: 10 * time.Millisecond})

				value := func(g, i int) []byte {
					v := bytes.Repeat([]byte{byte(g), byte(i)}, 50<<10)
					return append(v, fmt.Sprint(g, "/", i)...)
				}
				var (
					mu             sync.Mutex
					acked, failed  = map[string][]byte{}, map[string]bool{}
					failedSince    int   // failures seen after the injection
					lastErr        error // the last failure, which says why recovery waits
					injected, done = make(chan struct{}), make(chan struct{})
				)
				var wg sync.WaitGroup
				for g := range 32 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := 0; ; i++ {
							select {
							case <-done:
								return
							default:
							}
							key := fmt.Sprint(g, "/", i) // each key written once
							err := s.Apply("b", Put(key, value(g, i)))
							mu.Lock()
							if err == nil {
								acked[key] = value(g, i)
							} else {
								assert.ErrorIs(t, err, ErrWriteFailed)
								failed[key], lastErr = true, err
								select {
								case <-injected:
									failedSince++
								default:
								}
							}
							mu.Unlock()
						}
					}()
				}
				count := func(f func() int) int { mu.Lock(); defer mu.Unlock(); return f() }
				start := time.Now()
				require.Eventually(t, func() bool { return count(func() int { return len(acked) }) >= 200 },
					30*time.Second, time.Millisecond, "writes before the fault")
				warm := time.Since(start)
				fail(faults)
				close(injected)
				require.Eventually(t, func() bool { return s.Err() != nil && count(func() int { return failedSince }) >= 64 },
					30*time.Second, time.Millisecond, "writes fail while the disk does")
				before := count(func() int { return len(acked) })
				faults.Clear()
				// Recovery reopens the engine, which replays the WAL, flushes
				// it, and waits for the compactions that flush starts: work
				// that grows with what was written before the fault; then
				// come 200 writes, as many as before it. How long that takes
				// follows how fast this machine runs the test, so the wait
				// scales with the first 200 writes' time: under -race, among
				// other such tests on 2 overloaded cores, a fixed 30 s once
				// ran out. A recovery that never comes fails still, and
				// the failure shows the store's log.
				cleared, patience := time.Now(), max(30*time.Second, 10*warm)
				if !assert.Eventually(t, func() bool { return count(func() int { return len(acked) }) >= before+200 },
					patience, time.Millisecond, "writes succeed again once the fault clears (waited %v; the first 200 writes took %v)", patience, warm) {
					mu.Lock()
					last := lastErr
					mu.Unlock()
					t.Fatalf("recovery attempts: %d; writes in flight: %d; the last write failed with: %v; the store's log:\n%s",
						s.retries.Load(), s.outstanding.Load(), last, logs.String())
				}
				t.Logf("200 writes acknowledged %v after the fault cleared; the first 200 took %v", time.Since(cleared), warm)
				close(done)
				wg.Wait()
				require.NoError(t, s.Err())
				t.Logf("%d writes acknowledged, %d failed", len(acked), len(failed))

				check := func(s *Store) {
					pairs, _, err := s.Load("b")
					require.NoError(t, err)
					for k, v := range acked {
						if !assert.Equal(t, v, pairs[k], "acknowledged write %s", k) {
							return
						}
					}
					for k := range failed {
						if !assert.NotContains(t, pairs, k, "write %s was reported as failed", k) {
							return
						}
					}
					assert.Len(t, pairs, len(acked))
				}
				checkAcrossRestart(t, s, dir, policy, check)
			})
		}
	}
}

// Pebble commits a batch of half its memtable or more as a memtable of its
// own and clears it, sequence number included. Under everysec such a write,
// acknowledged and not yet fsynced, was then left out of what recovery
// replays (its sequence number read as 0), and lost if a fault came before
// pebble had flushed it, when recovery cut the WAL's unsynced tail.
func TestLargeWriteSurvivesRecovery(t *testing.T) {
	dir := t.TempDir()
	faults := &Faults{}
	s := openT(t, dir, Options{Fsync: FsyncEverySec, Faults: faults, RetryInterval: time.Millisecond, syncEvery: time.Hour})
	require.NoError(t, s.Apply("b", Put("small", []byte("1"))))
	require.NoError(t, s.syncNow()) // a later sync: the large write is not below it
	big := bytes.Repeat([]byte("x"), 3<<20)
	require.NoError(t, s.Apply("b", Put("big", big)))
	s.unsyncedMu.Lock()
	var listed bool
	for _, u := range s.unsynced {
		listed = listed || (u.seq >= s.syncedSeq && len(u.repr) > len(big))
	}
	s.unsyncedMu.Unlock()
	require.True(t, listed, "the large write is in the list a recovery replays")
	faults.FailSyncs(syscall.EIO)
	require.Error(t, s.syncNow())
	require.ErrorIs(t, s.Err(), ErrWriteFailed)
	faults.Clear()
	require.Eventually(t, func() bool { return s.Apply("b", Put("after", []byte("2"))) == nil }, 10*time.Second, time.Millisecond)
	check := func(s *Store) {
		pairs, _, err := s.Load("b")
		require.NoError(t, err)
		assert.Equal(t, map[string]int{"small": 1, "big": len(big), "after": 1},
			map[string]int{"small": len(pairs["small"]), "big": len(pairs["big"]), "after": len(pairs["after"])})
	}
	checkAcrossRestart(t, s, dir, FsyncEverySec, check)
}

// Pebble closes its WAL when it rotates it, and under everysec the file's
// Close fsyncs what the background sync has not. A background sync that
// ran during that Close skipped the WAL (no longer open) as if its Close
// had synced it: it reported the writes before its mark durable and took
// them off the list a recovery replays. When the Close's fsync then failed,
// the recovery cut them from the WAL, and acknowledged writes were lost
// (TestFaultUnderLoad/everysec/syncs failed, rarely, so).
func TestSyncWaitsForTheClosingWAL(t *testing.T) {
	dir := t.TempDir()
	faults := &Faults{}
	s := openT(t, dir, Options{Fsync: FsyncEverySec, Faults: faults, RetryInterval: time.Millisecond, syncEvery: time.Hour})
	require.NoError(t, s.Apply("b", Put("k", []byte("v")))) // acknowledged, not fsynced
	s.mu.RLock()
	db := s.db
	s.mu.RUnlock()

	closing, release := make(chan struct{}), make(chan struct{})
	// The closing WAL's fsync goes on, and fails.
	let := sync.OnceFunc(func() {
		faults.FailSyncs(fmt.Errorf("injected: %w", syscall.EIO))
		close(release)
	})
	rotated := make(chan error, 1)
	var rotate, closeWAL sync.Once
	s.fs.testHook = func(event, _ string) {
		switch event {
		case "sync": // the sync's mark is written: pebble rotates the WAL
			rotate.Do(func() {
				go func() {
					_, err := db.AsyncFlush()
					rotated <- err
				}()
				<-closing
			})
		case "close": // the WAL's Close, before its fsync
			closeWAL.Do(func() {
				close(closing)
				<-release
			})
		case "wait": // the sync waits for the closing WAL
			let()
		}
	}
	err := s.syncNow()
	let()
	require.NoError(t, <-rotated)
	assert.Error(t, err, "the sync said the closing WAL was durable")
	require.ErrorIs(t, s.Err(), ErrWriteFailed)

	faults.Clear()
	require.Eventually(t, func() bool { return s.Apply("b", Put("after", []byte("2"))) == nil },
		10*time.Second, time.Millisecond, "recovery")
	checkAcrossRestart(t, s, dir, FsyncEverySec, func(s *Store) {
		pairs, _, err := s.Load("b")
		require.NoError(t, err)
		assert.Equal(t, map[string][]byte{"k": []byte("v"), "after": []byte("2")}, pairs, "the acknowledged write survives")
	})
}

// walRecords reads back, from the WAL files pebble wrote, the last record
// of each: fed the file's bytes in the pieces pebble wrote them (whole
// chunks), it names the last commit.
func TestWALRecordsFollowsPebble(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{Fsync: FsyncAlways})
	var last uint64
	for i := range 300 {
		// Small writes, writes over several blocks, and empty marks.
		size := 10
		if i%7 == 0 {
			size = 100 << 10
		}
		w, err := s.ApplyNoWait("b", Put(fmt.Sprint(i), bytes.Repeat([]byte{'v'}, size)))
		require.NoError(t, err)
		require.NoError(t, w.Wait())
		require.Greater(t, w.g.key, last, "keys grow")
		last = w.g.key
		if i%10 == 0 {
			require.NoError(t, s.Settle())
		}
	}
	assert.Equal(t, last, s.fs.goodKey(), "the durable record is the last commit")
	require.NoError(t, s.Close())

	// The last WAL with records: Close's fold, a large batch, may leave a
	// newer one that holds only its end-of-log trailer.
	logs, err := filepath.Glob(filepath.Join(dir, "*.log"))
	require.NoError(t, err)
	var data []byte
	for i := len(logs) - 1; i >= 0 && data == nil; i-- {
		b, err := os.ReadFile(logs[i])
		require.NoError(t, err)
		var r walRecords
		r.feed(b)
		if r.last != 0 {
			data = b
		}
	}
	require.NotNil(t, data, "a WAL with records")
	var whole, split walRecords
	whole.feed(data)
	// The same bytes, cut at every chunk's end.
	for pos := int64(0); pos < int64(len(data)); {
		if walBlockSize-pos%walBlockSize < walRecyclableHeader || data[pos+6] == 0 {
			next := min((pos/walBlockSize+1)*walBlockSize, int64(len(data)))
			split.feed(data[pos:next])
			pos = next
			continue
		}
		c, ok := chunkAt(data, pos)
		if !ok { // the end-of-log trailer, or the file's zeroed tail
			split.feed(data[pos:])
			break
		}
		split.feed(data[pos : pos+int64(c.size)])
		pos += int64(c.size)
	}
	assert.False(t, whole.lost)
	assert.False(t, split.lost)
	assert.Equal(t, whole.last, split.last)
	assert.NotZero(t, whole.last)
}

// Commits that were already inside the engine when the disk failed go on
// after the fault: they fill memtables, which pebble rotates (with their
// WALs) and must flush. None may stall or crash the engine, and recovery
// must then close it: before the fence kept pebble's I/O in memory, the
// first rotation panicked on the WAL's failed write, and a writer waiting
// for a flush that kept failing blocked Close.
func TestFencedEngineGoesOn(t *testing.T) {
	for _, policy := range []Fsync{FsyncAlways, FsyncEverySec} {
		t.Run(policy.String(), func(t *testing.T) {
			dir := t.TempDir()
			faults := &Faults{}
			s := openT(t, dir, Options{Fsync: policy, Faults: faults, RetryInterval: time.Millisecond})
			require.NoError(t, s.Apply("b", Put("before", []byte("1"))))
			faults.FailWrites(fmt.Errorf("injected: %w", syscall.ENOSPC))
			require.ErrorIs(t, s.Apply("b", Put("failed", []byte("2"))), ErrWriteFailed)

			// Straight to the engine, past the store's checks, as a commit
			// in flight at the fault would be: 12 MiB, three memtables. A
			// commit holds the store's read lock (commitGroup), so that no
			// recovery closes the engine under it: without it, the
			// background sync's recovery (after a second, under everysec)
			// closed the engine under these writes on a loaded machine,
			// and pebble panicked ("pebble: closed").
			done := make(chan error, 1)
			go func() {
				s.mu.RLock()
				defer s.mu.RUnlock()
				db := s.db
				for i := range 12 {
					b := db.NewBatch()
					_ = b.Set(appendPairKey(nil, "b", fmt.Sprint("inflight", i)), bytes.Repeat([]byte{'x'}, 1<<20), nil)
					if err := db.Apply(b, pebble.Sync); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			select {
			case err := <-done:
				require.NoError(t, err, "pebble is never told of the fault")
			case <-time.After(time.Minute):
				t.Fatal("the engine stalled on memtables it could not flush")
			}

			faults.Clear()
			require.Eventually(t, func() bool { return s.Apply("b", Put("after", []byte("3"))) == nil },
				10*time.Second, time.Millisecond, "recovery closes the engine and reopens it")
			want := map[string]map[string][]byte{"b": {"before": []byte("1"), "after": []byte("3")}}
			checkAcrossRestart(t, s, dir, policy, func(s *Store) {
				assert.Equal(t, want, loadAll(t, s), "nothing written after the fault reached the disk")
			})
		})
	}
}

// A checkpoint that the disk's failure interrupts fails: its files are not
// the engine's, and the fence keeps none of them in memory.
func TestCheckpointDuringFault(t *testing.T) {
	dir := t.TempDir()
	faults := &Faults{}
	s := openT(t, dir, Options{Fsync: FsyncAlways, Faults: faults, RetryInterval: time.Millisecond})
	defer s.Close()
	require.NoError(t, s.Apply("b", Put("k", []byte("v"))))

	resume := faults.Stall()
	target := filepath.Join(dir, "checkpoints", "1")
	done := make(chan error, 1)
	go func() { done <- s.Checkpoint(target) }()
	// The checkpoint's first write (flushing the WAL) waits on the stall;
	// the disk then fails it.
	faults.FailWrites(fmt.Errorf("injected: %w", syscall.ENOSPC))
	resume()
	err := <-done
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "written, but", "the checkpoint itself failed")
	if _, serr := os.Stat(target); serr == nil {
		_, oerr := Open(target, Options{})
		assert.Error(t, oerr, "no usable checkpoint is left behind: %v", err)
	}
	assert.True(t, s.LastSave().IsZero())
}

// captureWriter keeps each write of pebble's WAL writer apart.
type captureWriter struct {
	mu     sync.Mutex
	writes [][]byte
}

func (c *captureWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes = append(c.writes, slices.Clone(p))
	return len(p), nil
}

func (c *captureWriter) Sync() error { return nil }

func (c *captureWriter) take() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.writes
	c.writes = nil
	return w
}

// walRecords names the last whole record after every write of pebble's
// own WAL writer, wherever in a block the record starts: a record that
// starts near a block's end has a first chunk too short for its batch
// header (a review found the parser skipped those, and so under always
// reported as failed a write that was fsynced), in both chunk formats.
// Fillers place a record's start at each of the 14 offsets before a
// block's end where its first chunk holds 0 to 13 bytes.
func TestWALRecordsAtEveryBlockOffset(t *testing.T) {
	for _, syncOffsets := range []bool{false, true} {
		t.Run(fmt.Sprint("sync offsets ", syncOffsets), func(t *testing.T) {
			header := walRecyclableHeader
			if syncOffsets {
				header = walSyncHeader
			}
			out := &captureWriter{}
			w := record.NewLogWriter(out, 7, record.LogWriterConfig{
				WriteWALSyncOffsets: func() bool { return syncOffsets },
			})
			var r walRecords
			seq := uint64(1)
			write := func(size int, count uint32) {
				t.Helper()
				rec := make([]byte, size)
				binary.LittleEndian.PutUint64(rec, seq)
				binary.LittleEndian.PutUint32(rec[8:], count)
				var wg sync.WaitGroup
				var err error
				wg.Add(1)
				_, serr := w.SyncRecord(rec, &wg, &err)
				require.NoError(t, serr)
				wg.Wait()
				require.NoError(t, err)
				for _, p := range out.take() {
					r.feed(p)
				}
				require.False(t, r.lost)
				require.Equal(t, recordKey(seq, count), r.last, "a record of %d bytes ending at %d", size, r.pos)
				seq += uint64(count)
			}
			for k := range 14 {
				target := int64(walBlockSize - header - k) // the next record starts here
				for r.pos%walBlockSize != target {
					room := int(target-r.pos%walBlockSize) - header
					if room < 12 { // no filler fits before target: go to the next block
						room = int(walBlockSize-r.pos%walBlockSize) + 100
					}
					write(room, 1)
				}
				write(100, 2)
				write(12, 0) // a mark
			}
			require.NoError(t, w.Close())
			for _, p := range out.take() {
				r.feed(p) // the end-of-log trailer
			}
			assert.False(t, r.lost)
		})
	}
}

// A write that fails on the disk is kept, in order, in the file's copy in
// memory: the writes after it follow it (a review found the next write
// overwrote it, which corrupted a flushed table in the fenced engine).
func TestDivertedWritesKeepTheirOrder(t *testing.T) {
	dir := t.TempDir()
	faults := &Faults{}
	fs := newFaultFS(vfs.Default, dir, faults, func(string, error) {}, true)
	name := filepath.Join(dir, "000005.sst")
	f, err := fs.Create(name, "pebble-memtable-flush")
	require.NoError(t, err)
	_, err = f.Write([]byte("AAAA"))
	require.NoError(t, err)
	faults.FailWrites(syscall.ENOSPC)
	for _, p := range []string{"BBBB", "CCCC"} {
		n, err := f.Write([]byte(p))
		require.NoError(t, err, "pebble is not told")
		require.Equal(t, 4, n)
	}
	require.NoError(t, f.Close())
	r, err := fs.Open(name)
	require.NoError(t, err)
	data, err := io.ReadAll(r)
	require.NoError(t, err)
	require.NoError(t, r.Close())
	assert.Equal(t, "AAAABBBBCCCC", string(data), "what pebble reads back")
	onDisk, err := os.ReadFile(name)
	require.NoError(t, err)
	assert.Equal(t, "AAAA", string(onDisk), "nothing after the fault reached the disk")
}

// Under everysec, Close's last fsync of the WAL makes the acknowledged
// writes durable; if it fails, Close says so (a review found the fence
// hid that failure from Close too).
func TestCloseReportsItsFailedSync(t *testing.T) {
	faults := &Faults{}
	s := openT(t, t.TempDir(), Options{Fsync: FsyncEverySec, Faults: faults, syncEvery: time.Hour})
	require.NoError(t, s.Apply("b", Put("k", []byte("v")))) // acknowledged, not fsynced
	faults.FailSyncs(fmt.Errorf("injected: %w", syscall.EIO))
	require.ErrorIs(t, s.Close(), ErrWriteFailed)
}

// failingDirs makes the fsync of a directory fail (EIO) while fail says
// so of it: a disk whose fsyncs fail fails those of directories too.
type failingDirs struct {
	vfs.FS
	fail func(dir string) bool
}

type failingDir struct {
	vfs.File
	name string
	fail func(dir string) bool
}

func (d failingDir) Sync() error {
	if d.fail(d.name) {
		return fmt.Errorf("injected: directory fsync: %w", syscall.EIO)
	}
	return d.File.Sync()
}

func (fs failingDirs) OpenDir(name string) (vfs.File, error) {
	f, err := fs.FS.OpenDir(name)
	if err != nil {
		return nil, err
	}
	return failingDir{f, name, fs.fail}, nil
}

// A failed fsync of the data directory is a fault like any other: pebble,
// which syncs the directory as it creates each WAL, is not told (a review
// found it was, and panicked rotating its WAL).
func TestDirectorySyncFailureIsAFault(t *testing.T) {
	dir := t.TempDir()
	faults := &Faults{}
	var fail atomic.Bool
	s, err := open(dir, Options{Fsync: FsyncEverySec, Faults: faults, RetryInterval: time.Millisecond},
		failingDirs{vfs.Default, func(string) bool { return fail.Load() }})
	require.NoError(t, err)
	require.NoError(t, s.Apply("b", Put("before", []byte("1"))))

	faults.FailSyncs(fmt.Errorf("injected: %w", syscall.EIO))
	fail.Store(true)
	// 100 KiB values fill the 4 MiB memtable: the WAL rotates.
	for i := range 100 {
		_ = s.Apply("b", Put(fmt.Sprint(i), bytes.Repeat([]byte{'v'}, 100<<10)))
	}
	require.ErrorIs(t, s.Err(), ErrWriteFailed)
	faults.Clear()
	fail.Store(false)
	require.Eventually(t, func() bool { return s.Apply("b", Put("after", []byte("2"))) == nil },
		10*time.Second, time.Millisecond)
	require.NoError(t, s.Close())
}

// A batch of many small changes was large for pebble (its memtable costs
// about 200 bytes a change) though its bytes are few: the store must know
// it as large, or its sequence number reads as 0 after the commit (a
// review found such a write acknowledged while the store was fenced, and
// left out of the everysec replay). Committed as one log record, it is
// one change of its bytes' size: the sequence number must still be read
// right.
func TestManySmallChangesAreALargeBatch(t *testing.T) {
	for _, policy := range []Fsync{FsyncAlways, FsyncEverySec} {
		t.Run(policy.String(), func(t *testing.T) {
			s := openT(t, t.TempDir(), Options{Fsync: policy})
			defer s.Close()
			require.NoError(t, s.Apply("b", Put("first", []byte("1"))))
			ops := make([]Op, 12000)
			for i := range ops {
				ops[i] = Put(fmt.Sprintf("k%06d", i), []byte("v"))
			}
			w, err := s.ApplyNoWait("b", ops...)
			require.NoError(t, err)
			require.NoError(t, w.Wait())
			assert.Greater(t, w.g.seq, uint64(1), "the batch's real sequence number")
			assert.Equal(t, recordKey(w.g.seq, 1), w.g.key, "12,000 pairs and the bucket's marker, in one log record")
		})
	}
}

// fullUnder is a disk that is full under one directory (another file
// system, mounted there).
type fullUnder struct {
	vfs.FS
	dir string
}

func (fs fullUnder) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	if strings.HasPrefix(name, fs.dir) {
		return nil, &os.PathError{Op: "open", Path: name, Err: syscall.ENOSPC}
	}
	return fs.FS.Create(name, c)
}

// A checkpoint that fails on its own files fails alone: its target full,
// the fsync of <data-dir>/checkpoints (where kv's daemon puts them) or of
// its own directory failing, the store goes on writing. A review found
// that the first two fenced the store, and that Pebble panics on the last
// (its marker code cannot tell what the directory holds), which killed
// the daemon (BGSAVE runs it on a goroutine) and left the store's read
// lock held.
func TestCheckpointFailureIsNotAFault(t *testing.T) {
	for _, tc := range []struct {
		name string
		disk func(target string) vfs.FS
		want error
	}{
		// The checkpoint is written next to its target, then renamed.
		{"target full", func(target string) vfs.FS { return fullUnder{vfs.Default, filepath.Dir(target)} }, syscall.ENOSPC},
		{"fsync of checkpoints/", func(target string) vfs.FS {
			return failingDirs{vfs.Default, func(d string) bool { return d == filepath.Dir(target) }}
		}, syscall.EIO},
		{"fsync of the checkpoint", func(target string) vfs.FS {
			partial := filepath.Join(filepath.Dir(target), "."+filepath.Base(target)+PartialSuffix)
			return failingDirs{vfs.Default, func(d string) bool { return d == partial }}
		}, syscall.EIO},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, err := filepath.EvalSymlinks(t.TempDir())
			require.NoError(t, err)
			target := filepath.Join(dir, "checkpoints", "1")
			require.NoError(t, os.MkdirAll(filepath.Dir(target), 0o755))
			s, err := open(dir, Options{Fsync: FsyncAlways}, tc.disk(target))
			require.NoError(t, err)
			require.NoError(t, s.Apply("b", Put("k", []byte("v"))))
			require.ErrorIs(t, s.Checkpoint(target), tc.want)
			require.NoError(t, s.Err(), "the store's own files are fine")
			require.NoError(t, s.Apply("b", Put("after", []byte("2"))))
			require.NoError(t, s.Close(), "the checkpoint released the store")
			ents, err := os.ReadDir(filepath.Dir(target))
			require.NoError(t, err)
			require.Empty(t, ents, "the failed checkpoint left nothing")
		})
	}
}
