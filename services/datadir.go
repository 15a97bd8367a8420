package services

import (
	"fmt"
	"log/slog"

	"github.com/kvproject/kv/internal/store"
	"github.com/kvproject/kv/registry"
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

// ErrDataDirInUse is returned, wrapped, by OpenDataDir when another
// process (or another DataDir of this one) holds the directory.
var ErrDataDirInUse = store.ErrLocked

// ErrDataDirDamaged is returned, wrapped and naming the file, when stored
// data cannot be read back whole: never a silent loss.
var ErrDataDirDamaged = store.ErrCorrupt

// DataDir is kv's durable store in a directory, what the daemon's
// --data-dir opens: every bucket of a tree built on it is kept on disk,
// across a bucket's crash, a restart of the tree or of the process, and a
// power cut within the fsync policy. Pass [DataDir.Store] as
// [Config.Store] to the trees that use it, one at a time, and Close it
// once they have stopped. Buckets come back from it lazily, on first use.
type DataDir struct {
	st *store.Store
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

// Store returns the store, for [Config.Store].
func (d *DataDir) Store() registry.Store { return d.st }

// Dir returns the directory.
func (d *DataDir) Dir() string { return d.st.Dir() }

// Checkpoint writes a consistent copy of the store into dir, which must
// not exist: a directory OpenDataDir can open, as the daemon's SAVE does.
func (d *DataDir) Checkpoint(dir string) error {
	if err := d.st.Checkpoint(dir); err != nil {
		return fmt.Errorf("services: checkpoint: %w", err)
	}
	return nil
}

// Close waits for the writes in flight, makes them durable and releases
// the directory. Close it after the trees that use it have stopped.
func (d *DataDir) Close() error {
	if err := d.st.Close(); err != nil {
		return fmt.Errorf("services: close data directory: %w", err)
	}
	return nil
}
