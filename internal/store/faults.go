package store

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Faults injects I/O errors below the storage engine, for tests. The zero
// value injects nothing; give a *Faults to [Open] through Options.Faults,
// then switch errors on and off while the store runs. All methods are safe
// for concurrent use.
type Faults struct {
	mu       sync.Mutex
	writeErr error
	syncErr  error
	stalled  chan struct{} // not nil: writes and syncs wait until it is closed
}

// Stall makes every later file write and sync wait (a hung disk) until
// resume is called; then they fail or succeed as the injected errors say
// at that moment. Calling resume more than once has no further effect.
func (f *Faults) Stall() (resume func()) {
	c := make(chan struct{})
	f.mu.Lock()
	f.stalled = c
	f.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			if f.stalled == c {
				f.stalled = nil
			}
			f.mu.Unlock()
			close(c)
		})
	}
}

// wait returns once no stall holds writes.
func (f *Faults) wait() {
	if f == nil {
		return
	}
	f.mu.Lock()
	c := f.stalled
	f.mu.Unlock()
	if c != nil {
		<-c
	}
}

// FailWrites makes every later file write, and the creation of new files,
// fail with err (for a full disk, syscall.ENOSPC), until cleared with nil.
func (f *Faults) FailWrites(err error) {
	f.mu.Lock()
	f.writeErr = err
	f.mu.Unlock()
}

// FailSyncs makes every later file sync fail with err, until cleared with
// nil. Writes still reach the file (the OS page cache), as when a disk
// reports an error on fsync.
func (f *Faults) FailSyncs(err error) {
	f.mu.Lock()
	f.syncErr = err
	f.mu.Unlock()
}

// Clear stops injecting errors.
func (f *Faults) Clear() {
	f.mu.Lock()
	f.writeErr, f.syncErr = nil, nil
	f.mu.Unlock()
}

func (f *Faults) errs() (write, sync error) {
	if f == nil {
		return nil, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.writeErr, f.syncErr
}

// errFenced is what every write below a store that has seen a write fail
// returns, until the store has reopened its files: from the first failure
// on, nothing more may reach the disk, so that recovery starts from what
// was on disk when the failure happened.
var errFenced = errors.New("store: writes fenced after an earlier I/O error")

// faultFS is the vfs.FS under every Store. It reports the first failed
// write or sync of any file (fault), then fences: it fails every later
// write, sync and file creation until reset. For WAL files it tracks how
// many bytes were written and how many were covered by a successful sync,
// so that recovery can cut what was written but never made durable.
//
// With deferWALSync (FsyncEverySec and FsyncNo), a WAL sync that pebble asks
// for only writes: the file's Sync returns at once, and the real fsync is
// syncWALs' job (the background sync) or the file's Close. Pebble's single
// WAL goroutine writes and syncs in turn, and while it syncs, the writes
// committed meanwhile wait in its own buffer, where a process kill would
// lose them; deferring the sync lets every commit reach the OS at once.
type faultFS struct {
	vfs.FS
	inj          *Faults
	onFault      func(file string, err error)
	deferWALSync bool

	fenced atomic.Bool

	mu   sync.Mutex
	wals map[string]*walState // by path
}

type walState struct {
	written int64      // bytes written through this handle
	synced  int64      // bytes covered by the last successful fsync
	open    *faultFile // nil once closed
}

func newFaultFS(inner vfs.FS, inj *Faults, onFault func(string, error), deferWALSync bool) *faultFS {
	return &faultFS{FS: inner, inj: inj, onFault: onFault, deferWALSync: deferWALSync, wals: make(map[string]*walState)}
}

func isWAL(name string) bool { return strings.HasSuffix(name, ".log") }

// fail records err as a fault on file and fences the FS. It returns err.
func (fs *faultFS) fail(file string, err error) error {
	if fs.fenced.CompareAndSwap(false, true) {
		fs.onFault(file, err)
	}
	return err
}

// check returns the error a new write must fail with, if any.
func (fs *faultFS) check(sync bool) error {
	fs.inj.wait()
	if fs.fenced.Load() {
		return errFenced
	}
	w, s := fs.inj.errs()
	if w != nil {
		return w
	}
	if sync {
		return s
	}
	return nil
}

func (fs *faultFS) wrap(name string, f vfs.File) vfs.File {
	ff := &faultFile{File: f, fs: fs, name: name}
	if isWAL(name) {
		ws := &walState{open: ff}
		fs.mu.Lock()
		fs.wals[name] = ws
		fs.mu.Unlock()
		ff.wal = ws
	}
	return ff
}

// Create implements vfs.FS.
func (fs *faultFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	if err := fs.check(false); err != nil {
		return nil, fs.fail(name, fmt.Errorf("create %s: %w", name, err))
	}
	f, err := fs.FS.Create(name, c)
	if err != nil {
		return nil, fs.fail(name, err)
	}
	return fs.wrap(name, f), nil
}

// OpenReadWrite implements vfs.FS.
func (fs *faultFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	if err := fs.check(false); err != nil {
		return nil, fs.fail(name, fmt.Errorf("open %s: %w", name, err))
	}
	f, err := fs.FS.OpenReadWrite(name, c, opts...)
	if err != nil {
		return nil, err
	}
	return fs.wrap(name, f), nil
}

// ReuseForWrite implements vfs.FS.
func (fs *faultFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	if err := fs.check(false); err != nil {
		return nil, fs.fail(newname, fmt.Errorf("reuse %s: %w", oldname, err))
	}
	f, err := fs.FS.ReuseForWrite(oldname, newname, c)
	if err != nil {
		return nil, fs.fail(newname, err)
	}
	return fs.wrap(newname, f), nil
}

// Rename implements vfs.FS.
func (fs *faultFS) Rename(oldname, newname string) error {
	if err := fs.check(false); err != nil {
		return fs.fail(newname, fmt.Errorf("rename %s: %w", oldname, err))
	}
	return fs.FS.Rename(oldname, newname)
}

// Link implements vfs.FS.
func (fs *faultFS) Link(oldname, newname string) error {
	if err := fs.check(false); err != nil {
		return fs.fail(newname, fmt.Errorf("link %s: %w", oldname, err))
	}
	return fs.FS.Link(oldname, newname)
}

// Unwrap implements vfs.FS.
func (fs *faultFS) Unwrap() vfs.FS { return fs.FS }

// cutUnsynced truncates every tracked WAL to the bytes its last successful
// sync covered, and forgets them. It is called with the engine closed.
func (fs *faultFS) cutUnsynced() (cut map[string]int64, err error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	cut = make(map[string]int64)
	for name, ws := range fs.wals {
		if ws.written > ws.synced {
			fi, serr := os.Stat(name)
			if serr != nil {
				if os.IsNotExist(serr) {
					continue // deleted as obsolete
				}
				return cut, fmt.Errorf("store: stat %s: %w", name, serr)
			}
			if fi.Size() > ws.synced {
				if terr := os.Truncate(name, ws.synced); terr != nil {
					return cut, fmt.Errorf("store: cut unsynced tail of %s: %w", name, terr)
				}
				cut[name] = fi.Size() - ws.synced
			}
		}
	}
	clear(fs.wals)
	return cut, nil
}

// probe checks that dir takes writes again: it writes and syncs a file as
// large as the WALs there plus 1 MiB, then removes it. It bypasses the fence
// but not the injected faults.
func (fs *faultFS) probe(dir string) error {
	if w, s := fs.inj.errs(); w != nil || s != nil {
		return errors.Join(w, s)
	}
	need := int64(1 << 20)
	if ents, err := os.ReadDir(dir); err == nil {
		for _, e := range ents {
			if isWAL(e.Name()) {
				if fi, err := e.Info(); err == nil {
					need += fi.Size()
				}
			}
		}
	}
	name := fs.PathJoin(dir, "kv-space-probe.tmp")
	f, err := fs.FS.Create(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("probe %s: %w", name, err)
	}
	defer func() { _ = fs.FS.Remove(name) }()
	chunk := make([]byte, 1<<20)
	for n := int64(0); n < need && err == nil; n += int64(len(chunk)) {
		_, err = f.Write(chunk)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("probe %s: %w", name, err)
	}
	return nil
}

// forgetWALs stops tracking the WALs written so far.
func (fs *faultFS) forgetWALs() {
	fs.mu.Lock()
	clear(fs.wals)
	fs.mu.Unlock()
}

// reset lifts the fence.
func (fs *faultFS) reset() { fs.fenced.Store(false) }

type faultFile struct {
	vfs.File
	fs   *faultFS
	name string
	wal  *walState // nil unless a WAL

	closeMu sync.Mutex // a background fsync and Close do not cross
	closed  bool
}

func (f *faultFile) noteWrite(n int) {
	if f.wal != nil {
		f.fs.mu.Lock()
		f.wal.written += int64(n)
		f.fs.mu.Unlock()
	}
}

// Write implements vfs.File.
func (f *faultFile) Write(p []byte) (int, error) {
	if err := f.fs.check(false); err != nil {
		return 0, f.fs.fail(f.name, fmt.Errorf("write %s: %w", f.name, err))
	}
	n, err := f.File.Write(p)
	f.noteWrite(n)
	if err != nil {
		return n, f.fs.fail(f.name, err)
	}
	return n, nil
}

// WriteAt implements vfs.File.
func (f *faultFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.fs.check(false); err != nil {
		return 0, f.fs.fail(f.name, fmt.Errorf("write %s: %w", f.name, err))
	}
	n, err := f.File.WriteAt(p, off)
	if err != nil {
		return n, f.fs.fail(f.name, err)
	}
	return n, nil
}

func (f *faultFile) sync(do func() error) error {
	if f.wal != nil && f.fs.deferWALSync {
		// The write already happened; the fsync is deferred.
		if err := f.fs.check(false); err != nil {
			return f.fs.fail(f.name, fmt.Errorf("sync %s: %w", f.name, err))
		}
		return nil
	}
	return f.realSync(do)
}

// realSync runs do, a real sync, and records what it covered.
func (f *faultFile) realSync(do func() error) error {
	if err := f.fs.check(true); err != nil {
		return f.fs.fail(f.name, fmt.Errorf("sync %s: %w", f.name, err))
	}
	var upTo int64
	if f.wal != nil {
		f.fs.mu.Lock()
		upTo = f.wal.written
		f.fs.mu.Unlock()
	}
	if err := do(); err != nil {
		return f.fs.fail(f.name, err)
	}
	if f.wal != nil {
		f.fs.mu.Lock()
		if upTo > f.wal.synced {
			f.wal.synced = upTo
		}
		f.fs.mu.Unlock()
	}
	return nil
}

// Close implements vfs.File. A WAL whose fsync was deferred is synced
// first: a WAL pebble has finished with must be durable.
func (f *faultFile) Close() error {
	f.closeMu.Lock()
	defer f.closeMu.Unlock()
	f.closed = true
	if f.wal != nil {
		f.fs.mu.Lock()
		unsynced := f.wal.written > f.wal.synced
		f.wal.open = nil
		f.fs.mu.Unlock()
		if unsynced && f.fs.deferWALSync {
			if err := f.realSync(f.File.Sync); err != nil {
				_ = f.File.Close()
				return err
			}
		}
	}
	return f.File.Close()
}

// syncWALs fsyncs every open WAL with writes its last fsync did not cover.
func (fs *faultFS) syncWALs() error {
	fs.mu.Lock()
	var files []*faultFile
	for name, ws := range fs.wals {
		switch {
		case ws.open != nil && ws.written > ws.synced:
			files = append(files, ws.open)
		case ws.open == nil && ws.written <= ws.synced:
			delete(fs.wals, name) // closed and durable: nothing to cut
		}
	}
	fs.mu.Unlock()
	for _, f := range files {
		f.closeMu.Lock()
		var err error
		if !f.closed { // else Close synced it
			err = f.realSync(f.File.Sync)
		}
		f.closeMu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// Sync implements vfs.File.
func (f *faultFile) Sync() error { return f.sync(f.File.Sync) }

// SyncData implements vfs.File.
func (f *faultFile) SyncData() error { return f.sync(f.File.SyncData) }

// SyncTo implements vfs.File.
func (f *faultFile) SyncTo(length int64) (fullSync bool, err error) {
	err = f.sync(func() error {
		var e error
		fullSync, e = f.File.SyncTo(length)
		return e
	})
	return fullSync, err
}
