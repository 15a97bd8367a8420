package services

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/thejerf/suture/v4"

	"github.com/kvproject/kv/internal/store"
)

// Fsync is when a [DataDir]'s writes reach the disk, with the meanings of
// Redis's appendfsync (and of the daemon's --fsync flag).
type Fsync int

const (
	// FsyncEverySec acknowledges a write once it is written to the OS, and
	// fsyncs once a second: a crash of the process loses nothing, a power
	// cut up to about a second. It is the default.
	FsyncEverySec Fsync = iota
	// FsyncAlways acknowledges a write once it is fsynced; concurrent
	// writers share fsyncs.
	FsyncAlways
	// FsyncNo acknowledges a write once it is written to the OS, and
	// leaves the fsync to the OS.
	FsyncNo
)

// String returns the policy as the daemon's --fsync flag spells it.
func (f Fsync) String() string {
	if p, err := f.policy(); err == nil {
		return p.String()
	}
	return fmt.Sprintf("Fsync(%d)", int(f))
}

// ParseFsync parses always, everysec or no, as the daemon's --fsync flag
// spells them.
func ParseFsync(s string) (Fsync, error) {
	for _, f := range []Fsync{FsyncEverySec, FsyncAlways, FsyncNo} {
		if f.String() == s {
			return f, nil
		}
	}
	return 0, fmt.Errorf("services: unknown fsync policy %q (want always, everysec or no)", s)
}

func (f Fsync) policy() (store.Fsync, error) {
	switch f {
	case FsyncEverySec:
		return store.FsyncEverySec, nil
	case FsyncAlways:
		return store.FsyncAlways, nil
	case FsyncNo:
		return store.FsyncNo, nil
	}
	return 0, fmt.Errorf("services: unknown fsync policy %d", int(f))
}

// DataDirOptions configures [OpenDataDir]. The zero value is ready to use.
type DataDirOptions struct {
	// Fsync is the durability policy; the zero value is FsyncEverySec.
	Fsync Fsync
	// Logger receives the store's logs (recovery, damage, a failing disk).
	// Nil discards them.
	Logger *slog.Logger
}

var (
	// ErrDataDirInUse is returned, wrapped, by OpenDataDir when another
	// process (or another DataDir of this one) holds the directory, and by
	// a Root's Serve when another tree serves on its DataDir.
	ErrDataDirInUse = store.ErrLocked
	// ErrDataDirDamaged is returned, wrapped and naming the file, when
	// stored data cannot be read back whole: never a silent loss.
	ErrDataDirDamaged = store.ErrCorrupt
	// ErrDataDirClosed is returned, wrapped, by a write to a bucket whose
	// DataDir is closed, and by a second Close.
	ErrDataDirClosed = store.ErrClosed
	// ErrWriteFailed is returned, wrapped with its cause, by a write that
	// did not become durable (a full disk, an I/O error): it was not
	// acknowledged, and its bucket ends, to come back from the disk, which
	// does not hold the write, at its next use. Writes resume once the
	// disk does.
	ErrWriteFailed = store.ErrWriteFailed
)

// DataDir is kv's durable store in a directory, what the daemon's
// --data-dir opens: every bucket of a tree built on it is kept on disk,
// across a bucket's crash, a restart of the tree or of the process, and a
// power cut within the fsync policy. Give it to the trees that use it as
// [Config.DataDir]; one at a time holds it, from its Serve or its
// registry's first use of the store, whichever comes first, until it
// stops (another one's Serve, and its registry's store operations, fail
// with ErrDataDirInUse, as two trees would each keep their own copy of a
// bucket in memory). Close it once they have stopped. Buckets come
// back from it lazily, at their first use.
type DataDir struct {
	st    *store.Store
	inUse atomic.Bool // a tree holds it
	// closeMu is held by Close while it closes the store: another Close
	// returns only once the store is closed and the directory released.
	closeMu sync.Mutex
}

// OpenDataDir opens the store in dir, creating it if needed, and recovers
// what a crash left (up to the last whole write). It locks the directory
// until Close.
func OpenDataDir(dir string, opts DataDirOptions) (*DataDir, error) {
	policy, err := opts.Fsync.policy()
	if err != nil {
		return nil, err
	}
	st, err := store.Open(dir, store.Options{Fsync: policy, Logger: opts.Logger})
	if err != nil {
		return nil, fmt.Errorf("services: open data directory: %w", err)
	}
	return &DataDir{st: st}, nil
}

// Dir returns the directory's absolute path, with symbolic links resolved.
func (d *DataDir) Dir() string { return d.st.Dir() }

// claim takes d for a tree that starts to hold it; release gives it back.
func (d *DataDir) claim() (release func(), err error) {
	if !d.inUse.CompareAndSwap(false, true) {
		return nil, fmt.Errorf("services: another tree serves on %s: %w (%w)", d.Dir(), ErrDataDirInUse, suture.ErrDoNotRestart)
	}
	return func() { d.inUse.Store(false) }, nil
}

// Checkpoint writes a consistent copy of the store into dir, which must
// not exist: a directory OpenDataDir can open, as the daemon's SAVE does.
func (d *DataDir) Checkpoint(dir string) error {
	if err := d.st.Checkpoint(dir); err != nil {
		return fmt.Errorf("services: checkpoint: %w", err)
	}
	return nil
}

// Close waits for the writes in flight, makes them durable and releases
// the directory. Close it after the trees that use it have stopped: it
// waits for every write made through them to be waited for, including
// each bucket.Pending (from SetNoWait or UpdateNoWait), which its caller
// must Wait. A second Close returns an error wrapping ErrDataDirClosed,
// once the first has returned: whichever Close returns, the store is
// closed and the directory released.
func (d *DataDir) Close() error {
	d.closeMu.Lock()
	defer d.closeMu.Unlock()
	if err := d.st.Close(); err != nil {
		return fmt.Errorf("services: close data directory: %w", err)
	}
	return nil
}
