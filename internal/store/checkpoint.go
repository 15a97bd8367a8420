package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/wal"
)

// PartialSuffix ends the name of the directory a [Store.Checkpoint] is
// written into before it takes its own name: "." + base + PartialSuffix,
// next to it. One left behind (the process was killed during the
// checkpoint) is incomplete; it may be removed.
const PartialSuffix = ".partial"

// Checkpoint writes a consistent copy of the store into dir, which must not
// exist yet: every write acknowledged before the call is in it. [Open] can
// start from dir as from any data directory. Files are hard-linked when dir
// is on the same file system, so a checkpoint is quick and small at first.
// The copy is written next to dir (see PartialSuffix) and renamed to dir
// once complete and synced: dir never holds a partial checkpoint, whatever
// stops this one. Checkpoints run one at a time. On success the store
// records the time (LastSave), durably.
func (s *Store) Checkpoint(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("store: checkpoint %s: %w", dir, err)
	}
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	if _, err := os.Lstat(abs); !errors.Is(err, fs.ErrNotExist) {
		if err == nil {
			err = fs.ErrExist
		}
		return fmt.Errorf("store: checkpoint %s: %w", abs, err)
	}
	partial := filepath.Join(filepath.Dir(abs), "."+filepath.Base(abs)+PartialSuffix)
	if err := os.RemoveAll(partial); err != nil { // a killed attempt's
		return fmt.Errorf("store: checkpoint %s: %w", abs, err)
	}
	// Writes made before the call and not yet committed (their Waiters
	// not yet called: a pipeline's, answered after this call) are
	// committed first, so that the checkpoint holds every write made
	// before it, in the commit order; and not in the middle of a
	// transaction's writes: after the Holds under way, before the next
	// (see Hold). The next waits until the copy is made: a Hold's
	// groups wait for its release, but a bucket's drop, move or load
	// under it commits what came before it, so a transaction begun
	// before the copy could have half its writes in it.
	if s.testCheckpointGateHook != nil {
		s.testCheckpointGateHook()
	}
	s.holdMu.Lock()
	err = s.Settle()
	if err == nil {
		if s.testCheckpointCopyHook != nil {
			s.testCheckpointCopyHook()
		}
		err = s.checkpoint(partial)
	}
	s.holdMu.Unlock()
	now := time.Now()
	if err == nil {
		err = writeCheckpointTime(partial, now)
	}
	if err == nil && s.testSaveHook != nil {
		err = s.testSaveHook(partial)
	}
	if err != nil {
		_ = os.RemoveAll(partial)
		return fmt.Errorf("store: checkpoint %s: %w", abs, err)
	}
	// Pebble has synced the files and the directory; the rename is
	// synced in the parent.
	if err := os.Rename(partial, abs); err != nil {
		_ = os.RemoveAll(partial)
		return fmt.Errorf("store: checkpoint %s: %w", abs, err)
	}
	if err := syncDir(filepath.Dir(abs)); err != nil {
		// Its name may not survive a crash: not a checkpoint to rely on.
		_ = os.RemoveAll(abs)
		return fmt.Errorf("store: checkpoint %s: %w", abs, err)
	}
	// The Holds go on again since the gate above: the record joins the
	// group one may keep, and waits for its release (WaitOrUndo), rather
	// than commit it with a transaction's first writes only (Wait would).
	w, err := s.enqueue("record the last save", "", len(keyLastSave)+8+perChange, func(b *pebble.Batch) {
		_ = b.Set(keyLastSave, binary.BigEndian.AppendUint64(nil, uint64(now.UnixNano())), nil)
	})
	if err == nil {
		err = w.WaitOrUndo(false, nil)
	}
	if err != nil {
		return fmt.Errorf("store: checkpoint %s written, but: %w", abs, err)
	}
	if s.opts.Fsync != FsyncAlways {
		if err := s.syncNow(); err != nil {
			return fmt.Errorf("store: checkpoint %s written, but: %w", abs, err)
		}
	}
	s.lastSave.Store(now.UnixNano())
	s.log.Info("store: checkpoint written", "dir", abs)
	return nil
}

// checkpoint has pebble write the checkpoint. Pebble panics when a
// directory fsync of the checkpoint fails (it cannot tell which marker
// the directory holds); that is the checkpoint's failure, not the
// store's: it becomes an error, and pebble's own deferred cleanup (the
// partial checkpoint removed) has run as the panic unwound.
func (s *Store) checkpoint(abs string) (err error) {
	db, done, err := s.folded()
	if err != nil {
		return err
	}
	defer done()
	defer func() {
		switch r := recover().(type) {
		case nil:
		case error:
			err = fmt.Errorf("pebble: %w", r)
		default:
			err = fmt.Errorf("pebble: %v", r)
		}
	}()
	if err := db.Checkpoint(abs, pebble.WithFlushedWAL()); err != nil {
		return err
	}
	return endCopiedWAL(abs)
}

// endCopiedWAL cuts the newest WAL of the checkpoint in dir after its last
// whole write. Pebble copies that log while the store goes on appending to
// it, reading it to its end, and the file may be a recycled one, whose
// bytes past the writes are an older log's: a copy that reads the block
// the writer is filling, and the next block only after the writer has gone
// on into it, holds the older log's bytes in the middle of the log and
// whole writes after them. Such a log reads as damaged: Check reports it,
// a start from the checkpoint logs possible damage and drops the writes
// after the hole, or refuses to start when one of them says the log was
// synced past it (under FsyncAlways, most often). Every write the
// checkpoint must hold is before the hole (it was in the file before the
// copy began); the writes after it were made during the copy, and the
// checkpoint is as consistent without them: it ends where the hole begins.
func endCopiedWAL(dir string) error {
	logs, err := wal.Scan(wal.Dir{FS: vfs.Default, Dirname: dir})
	if err != nil || len(logs) == 0 {
		return err
	}
	last := logs[len(logs)-1]
	_, path := last.SegmentLocation(0)
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	_, _, end := walkWALEnd(data, uint32(last.Num))
	if end == int64(len(data)) {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	err = f.Truncate(end)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("end the copy of the write-ahead log: %w", err)
	}
	return nil
}

// checkpointFile, in a checkpoint's directory, holds the checkpoint's time
// (Unix nanoseconds, in decimal). The store records a save's time only
// once the checkpoint is complete, so the copy itself holds the save
// before it; a store opened on the checkpoint (or checked) reports this
// time instead, when it is later.
const checkpointFile = "KV-CHECKPOINT"

// writeCheckpointTime writes t into dir's checkpointFile, durably.
func writeCheckpointTime(dir string, t time.Time) error {
	f, err := os.OpenFile(filepath.Join(dir, checkpointFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(strconv.FormatInt(t.UnixNano(), 10) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("record the checkpoint's time: %w", err)
	}
	return nil
}

// CheckpointTime returns the time of the checkpoint written into dir by
// Checkpoint: what LastSave returned once it was complete, and what a store
// started from dir reports until it saves again. Read from dir, it is this
// checkpoint's time even when other checkpoints have been written since.
func CheckpointTime(dir string) (time.Time, error) {
	t, ok, err := checkpointTime(dir)
	if err == nil && !ok {
		err = fmt.Errorf("%s has no %s file: not a checkpoint", dir, checkpointFile)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("store: checkpoint time: %w", err)
	}
	return t, nil
}

// checkpointTime returns the time recorded in dir's checkpointFile; ok is
// false when dir holds none (it is not a checkpoint) or when it cannot be
// read as one, which err then says.
func checkpointTime(dir string) (t time.Time, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, checkpointFile))
	if errors.Is(err, fs.ErrNotExist) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, err
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || ns <= 0 {
		return time.Time{}, false, fmt.Errorf("%s holds %.40q, not a time", checkpointFile, b)
	}
	return time.Unix(0, ns), true, nil
}

// syncDir makes the entries of dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// LastSave returns the time of the last successful Checkpoint of this data
// directory (kept across restarts), or the zero time if there was none.
func (s *Store) LastSave() time.Time {
	ns := s.lastSave.Load()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// loadMeta reads the store's own records after Open.
func (s *Store) loadMeta() error {
	// A checkpoint's own time, when the store was started from one.
	if t, ok, err := checkpointTime(s.dir); err != nil {
		s.log.Warn("store: cannot read the time of the checkpoint this directory was copied from; LASTSAVE ignores it", "dir", s.dir, "err", err)
	} else if ok {
		s.lastSave.Store(t.UnixNano())
	}
	v, c, err := s.db.Get(keyLastSave)
	if err == pebble.ErrNotFound {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: read last save time in %s: %w", s.dir, err)
	}
	defer c.Close()
	if len(v) != 8 {
		return fmt.Errorf("%w: last save time in %s has %d bytes, not 8", ErrCorrupt, s.dir, len(v))
	}
	if ns := int64(binary.BigEndian.Uint64(v)); ns > s.lastSave.Load() {
		s.lastSave.Store(ns)
	}
	return nil
}
