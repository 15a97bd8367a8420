package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2"
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
	// Writes made before the call and not yet committed (their Waiters
	// not yet called: a pipeline's, answered after this call) are
	// committed first, so that the checkpoint holds every write made
	// before it, in the commit order.
	if err := s.Settle(); err != nil {
		return fmt.Errorf("store: checkpoint %s: %w", abs, err)
	}
	partial := filepath.Join(filepath.Dir(abs), "."+filepath.Base(abs)+PartialSuffix)
	if err := os.RemoveAll(partial); err != nil { // a killed attempt's
		return fmt.Errorf("store: checkpoint %s: %w", abs, err)
	}
	err = s.checkpoint(partial)
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
	now := time.Now()
	if err := s.write("record the last save", "", len(keyLastSave)+8+perChange, func(b *pebble.Batch) {
		_ = b.Set(keyLastSave, binary.BigEndian.AppendUint64(nil, uint64(now.UnixNano())), nil)
	}); err != nil {
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
	return db.Checkpoint(abs, pebble.WithFlushedWAL())
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
	s.lastSave.Store(int64(binary.BigEndian.Uint64(v)))
	return nil
}
