package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// errFenced is what a write below a fenced store fails with when it cannot
// be kept in memory: a compaction's output, or a file outside the data
// directory (a checkpoint).
var errFenced = errors.New("store: writes fenced after an earlier I/O error")

// faultFS is the vfs.FS under every Store. It reports the first failed
// write, sync or file creation (a fault) to the store, and from that
// moment fences the data directory: nothing more reaches the disk, so that
// recovery starts from what was on disk when the fault happened.
//
// Pebble treats a failed WAL write as fatal (it panics when it rotates a
// WAL that failed), and a memtable that cannot be flushed stalls its
// writers inside the commit pipeline, where they block Close. So the fence
// does not fail pebble's I/O: it diverts it into memory, where pebble can
// go on (flush, rotate, close) as if the disk worked, until the store
// closes the engine to recover. The store decides itself which commits
// failed: faultFS follows the records written to each WAL and publishes
// the last one that is as durable as the policy asks ([faultFS.goodKey]);
// a commit after it failed, whatever pebble says. Compactions are the one
// exception: their output could be as large as the store, so while the
// store is fenced a compaction's new file waits until the engine closes,
// then fails.
//
// With deferWALSync (FsyncEverySec and FsyncNo), a WAL sync that pebble asks
// for only writes: the file's Sync returns at once, and the real fsync is
// syncWALs' job (the background sync) or the file's Close. Pebble's single
// WAL goroutine writes and syncs in turn, and while it syncs, the writes
// committed meanwhile wait in its own buffer, where a process kill would
// lose them; deferring the sync lets every commit reach the OS at once.
type faultFS struct {
	vfs.FS
	dir          string // the data directory: only it is fenced into memory
	inj          *Faults
	onFault      func(file string, err error)
	deferWALSync bool

	fenced atomic.Bool   // fence != nil, read without the lock
	good   atomic.Uint64 // recordKey of the last durable WAL record

	// testHook, for tests, is called with an event and a file name:
	// "close" as a WAL's Close is about to fsync it; "sync" as syncWALs
	// begins; "wait" as syncWALs is about to wait for a WAL.
	testHook func(event, file string)

	mu      sync.Mutex
	fence   *fence               // nil until a fault
	closing bool                 // the engine closes (or opens): a fence starts released
	wals    map[string]*walState // by path, WALs on disk
}

// fence is where pebble's writes go once the store is fenced.
type fence struct {
	mem     vfs.FS          // the files written since the fault
	hidden  map[string]bool // disk files removed or renamed away since
	release chan struct{}   // closed when the engine closes
}

type walState struct {
	written int64      // bytes written through this handle
	synced  int64      // bytes covered by the last successful fsync
	open    *faultFile // nil once closed, and synced by its Close unless fenced
	records walRecords // what those bytes hold
}

func newFaultFS(inner vfs.FS, dir string, inj *Faults, onFault func(string, error), deferWALSync bool) *faultFS {
	return &faultFS{FS: inner, dir: dir, inj: inj, onFault: onFault, deferWALSync: deferWALSync, wals: make(map[string]*walState)}
}

func isWAL(name string) bool { return strings.HasSuffix(name, ".log") }

// isCompaction reports whether a file created with category c is a
// compaction's output.
func isCompaction(c vfs.DiskWriteCategory) bool {
	return c == "pebble-compaction" || c == "pebble-blob-file-rewrite"
}

// inDir reports whether name is the data directory or one of the engine's
// files, all of which are at its top level. A checkpoint (in a directory
// under it, or elsewhere) is not: while fenced, its writes fail.
func (fs *faultFS) inDir(name string) bool {
	return name == fs.dir || filepath.Dir(name) == fs.dir
}

// fail records err, met on file, as the fault and fences the data
// directory, unless it is fenced already. The store hears of the fault
// before anything is diverted, so that a commit that pebble reports as
// written after the fault finds it. A failure on a file that is not the
// engine's (a checkpoint's) is not a fault: the caller reports it, and the
// store goes on; file is "" for pebble's own fatal errors.
func (fs *faultFS) fail(file string, err error) {
	if file != "" && !fs.inDir(file) {
		return
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.fence != nil {
		return
	}
	if file == "" {
		file = "pebble"
	}
	fs.onFault(file, err)
	fs.fenceLocked()
}

// fenceAgain fences the directory after a recovery that failed, with the
// store's fault still recorded.
func (fs *faultFS) fenceAgain() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.fence == nil {
		fs.fenceLocked()
	}
}

func (fs *faultFS) fenceLocked() {
	mem := vfs.NewMem()
	_ = mem.MkdirAll(fs.dir, 0o755)
	fs.fence = &fence{mem: mem, hidden: make(map[string]bool), release: make(chan struct{})}
	if fs.closing {
		close(fs.fence.release)
	}
	fs.fenced.Store(true)
}

// setClosing says whether the engine is closing (or opening, when it
// waits for the compactions it starts): while it is, compactions fail at
// once, those waiting on the fence included, and a fence raised starts
// released.
func (fs *faultFS) setClosing(closing bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.closing = closing
	if f := fs.fence; f != nil && closing {
		select {
		case <-f.release:
		default:
			close(f.release)
		}
	}
}

// reset lifts the fence and drops what it kept in memory, for a new
// engine. The engine that wrote there must be closed, and every commit of
// it answered (the durable record starts again from nothing).
func (fs *faultFS) reset() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.fence = nil
	fs.fenced.Store(false)
	fs.closing = false
	fs.good.Store(0)
}

// goodKey returns the recordKey of the last WAL record that is as durable
// as the policy asks: fsynced under FsyncAlways, written to the OS under
// the others. Once fenced, it no longer moves.
func (fs *faultFS) goodKey() uint64 { return fs.good.Load() }

func (fs *faultFS) raiseGood(k uint64) {
	for {
		old := fs.good.Load()
		if k <= old || fs.good.CompareAndSwap(old, k) {
			return
		}
	}
}

// injected returns the injected error a new write (or sync) must fail with.
func (fs *faultFS) injected(sync bool) error {
	fs.inj.wait()
	w, s := fs.inj.errs()
	if w != nil {
		return w
	}
	if sync {
		return s
	}
	return nil
}

// fenceOf returns the fence, or nil.
func (fs *faultFS) fenceOf() *fence {
	if !fs.fenced.Load() {
		return nil
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.fence
}

func (fs *faultFS) wrap(name string, f vfs.File, c vfs.DiskWriteCategory) vfs.File {
	ff := &faultFile{File: f, fs: fs, name: name, compaction: isCompaction(c)}
	// Only the engine's own WALs: a checkpoint's copy of one (in another
	// directory) is a plain file, fsynced when pebble asks, whose chunks
	// keep the synced offsets they were written with, and whose records
	// say nothing of what the store has made durable.
	if isWAL(name) && fs.inDir(name) {
		ws := &walState{open: ff}
		fs.mu.Lock()
		fs.pruneWALsLocked()
		fs.wals[name] = ws
		fs.mu.Unlock()
		ff.wal = ws
	}
	return ff
}

// pruneWALsLocked forgets the WALs that are closed and durable: nothing of
// theirs is to be cut. syncWALs does it under FsyncEverySec; every new WAL
// does it too, for the other policies, under which the map would
// otherwise keep an entry for each WAL the store ever wrote. The caller
// holds fs.mu.
func (fs *faultFS) pruneWALsLocked() {
	for name, ws := range fs.wals {
		if ws.open == nil && ws.written <= ws.synced {
			delete(fs.wals, name)
		}
	}
}

// forgetWAL forgets name, removed from the disk or reused under another
// name: no tail of it is left to cut.
func (fs *faultFS) forgetWAL(name string) {
	if !isWAL(name) {
		return
	}
	fs.mu.Lock()
	delete(fs.wals, name)
	fs.mu.Unlock()
}

// Create implements vfs.FS.
func (fs *faultFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	if f := fs.fenceOf(); f != nil {
		return fs.createFenced(f, name, c)
	}
	err := fs.injected(false)
	if err == nil {
		var file vfs.File
		if file, err = fs.FS.Create(name, c); err == nil {
			return fs.wrap(name, file, c), nil
		}
	}
	err = fmt.Errorf("create %s: %w", name, err)
	fs.fail(name, err)
	if isCompaction(c) || !fs.inDir(name) {
		return nil, err
	}
	return fs.createFenced(fs.fenceOf(), name, c)
}

// createFenced creates name in memory; a compaction's output waits until
// the engine closes, then fails.
func (fs *faultFS) createFenced(f *fence, name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	if !fs.inDir(name) {
		return nil, fmt.Errorf("create %s: %w", name, errFenced)
	}
	if isCompaction(c) {
		<-f.release
		return nil, fmt.Errorf("create %s: %w", name, errFenced)
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return f.mem.Create(name, c)
}

// OpenReadWrite implements vfs.FS.
func (fs *faultFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	if f := fs.fenceOf(); f != nil {
		if !fs.inDir(name) {
			return nil, fmt.Errorf("open %s: %w", name, errFenced)
		}
		fs.mu.Lock()
		defer fs.mu.Unlock()
		if err := fs.copyInLocked(f, name, name); err != nil && !os.IsNotExist(err) {
			return nil, err
		}
		return f.mem.OpenReadWrite(name, c, opts...)
	}
	if err := fs.injected(false); err != nil {
		err = fmt.Errorf("open %s: %w", name, err)
		fs.fail(name, err)
		return nil, err
	}
	f, err := fs.FS.OpenReadWrite(name, c, opts...)
	if err != nil {
		return nil, err
	}
	return fs.wrap(name, f, c), nil
}

// ReuseForWrite implements vfs.FS.
func (fs *faultFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	if f := fs.fenceOf(); f != nil {
		return fs.reuseFenced(f, oldname, newname, c)
	}
	err := fs.injected(false)
	if err == nil {
		var file vfs.File
		if file, err = fs.FS.ReuseForWrite(oldname, newname, c); err == nil {
			fs.forgetWAL(oldname)
			return fs.wrap(newname, file, c), nil
		}
	}
	err = fmt.Errorf("reuse %s: %w", oldname, err)
	fs.fail(newname, err)
	if !fs.inDir(newname) {
		return nil, err
	}
	return fs.reuseFenced(fs.fenceOf(), oldname, newname, c)
}

func (fs *faultFS) reuseFenced(f *fence, oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	if !fs.inDir(newname) || !fs.inDir(oldname) {
		return nil, fmt.Errorf("reuse %s: %w", oldname, errFenced)
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.removeLocked(f, oldname)
	return f.mem.Create(newname, c)
}

// Rename implements vfs.FS.
func (fs *faultFS) Rename(oldname, newname string) error {
	return fs.move(oldname, newname, true, "rename", fs.FS.Rename)
}

// Link implements vfs.FS.
func (fs *faultFS) Link(oldname, newname string) error {
	return fs.move(oldname, newname, false, "link", fs.FS.Link)
}

// move renames oldname to newname, or links it (remove false), with disk;
// in memory once the store is fenced, and from the moment that disk fails.
func (fs *faultFS) move(oldname, newname string, remove bool, op string, disk func(string, string) error) error {
	if f := fs.fenceOf(); f != nil {
		return fs.moveFenced(f, oldname, newname, remove, op)
	}
	err := fs.injected(false)
	if err == nil {
		if err = disk(oldname, newname); err == nil {
			return nil
		}
	}
	err = fmt.Errorf("%s %s: %w", op, oldname, err)
	fs.fail(newname, err)
	if !fs.inDir(oldname) || !fs.inDir(newname) {
		return err
	}
	return fs.moveFenced(fs.fenceOf(), oldname, newname, remove, op)
}

// moveFenced is move's op in memory: it copies oldname in from the disk
// if it is there.
func (fs *faultFS) moveFenced(f *fence, oldname, newname string, remove bool, op string) error {
	if !fs.inDir(oldname) || !fs.inDir(newname) {
		return fmt.Errorf("%s %s: %w", op, oldname, errFenced)
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if err := fs.copyInLocked(f, oldname, newname); err != nil {
		return err
	}
	if remove {
		fs.removeLocked(f, oldname)
	}
	return nil
}

// copyInLocked makes to, in memory, a copy of from (in memory, or else on
// the disk unless hidden).
func (fs *faultFS) copyInLocked(f *fence, from, to string) error {
	var data []byte
	if src, err := f.mem.Open(from); err == nil {
		data, err = io.ReadAll(src)
		_ = src.Close()
		if err != nil {
			return err
		}
	} else {
		if f.hidden[from] {
			return &os.PathError{Op: "open", Path: from, Err: os.ErrNotExist}
		}
		if data, err = os.ReadFile(from); err != nil {
			return err
		}
	}
	dst, err := f.mem.Create(to, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	_, err = dst.Write(data)
	return errors.Join(err, dst.Close())
}

// removeLocked removes name from the fenced view: from memory, and hides
// the disk's copy.
func (fs *faultFS) removeLocked(f *fence, name string) {
	_ = f.mem.Remove(name)
	if _, err := os.Lstat(name); err == nil {
		f.hidden[name] = true
	}
}

// Remove implements vfs.FS. While fenced, a file is removed from memory or
// hidden, never from the disk.
func (fs *faultFS) Remove(name string) error {
	f := fs.fenceOf()
	if f == nil || !fs.inDir(name) {
		err := fs.FS.Remove(name)
		if err == nil {
			fs.forgetWAL(name)
		}
		return err
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if !fs.existsLocked(f, name) {
		return &os.PathError{Op: "remove", Path: name, Err: os.ErrNotExist}
	}
	fs.removeLocked(f, name)
	return nil
}

// RemoveAll implements vfs.FS.
func (fs *faultFS) RemoveAll(name string) error {
	if fs.fenced.Load() && fs.inDir(name) {
		return fmt.Errorf("remove %s: %w", name, errFenced)
	}
	return fs.FS.RemoveAll(name)
}

func (fs *faultFS) existsLocked(f *fence, name string) bool {
	if _, err := f.mem.Stat(name); err == nil {
		return true
	}
	if f.hidden[name] {
		return false
	}
	_, err := os.Lstat(name)
	return err == nil
}

// Open implements vfs.FS.
func (fs *faultFS) Open(name string, opts ...vfs.OpenOption) (vfs.File, error) {
	if f := fs.fenceOf(); f != nil && fs.inDir(name) {
		fs.mu.Lock()
		file, err := f.mem.Open(name, opts...)
		hidden := f.hidden[name]
		fs.mu.Unlock()
		if err == nil {
			return file, nil
		}
		if hidden {
			return nil, &os.PathError{Op: "open", Path: name, Err: os.ErrNotExist}
		}
	}
	return fs.FS.Open(name, opts...)
}

// Stat implements vfs.FS.
func (fs *faultFS) Stat(name string) (vfs.FileInfo, error) {
	if f := fs.fenceOf(); f != nil && fs.inDir(name) {
		fs.mu.Lock()
		fi, err := f.mem.Stat(name)
		hidden := f.hidden[name]
		fs.mu.Unlock()
		if err == nil {
			return fi, nil
		}
		if hidden {
			return nil, &os.PathError{Op: "stat", Path: name, Err: os.ErrNotExist}
		}
	}
	return fs.FS.Stat(name)
}

// List implements vfs.FS.
func (fs *faultFS) List(dir string) ([]string, error) {
	names, err := fs.FS.List(dir)
	f := fs.fenceOf()
	if f == nil || !fs.inDir(dir) {
		return names, err
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	names = slices.DeleteFunc(names, func(n string) bool { return f.hidden[fs.PathJoin(dir, n)] })
	if mem, merr := f.mem.List(dir); merr == nil {
		for _, n := range mem {
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
		err = nil
	}
	return names, err
}

// MkdirAll implements vfs.FS. While fenced, only the data directory
// itself (pebble's Open makes it) is made, in memory; any other (a
// checkpoint's) fails.
func (fs *faultFS) MkdirAll(dir string, perm os.FileMode) error {
	if f := fs.fenceOf(); f != nil {
		if dir != fs.dir {
			return fmt.Errorf("mkdir %s: %w", dir, errFenced)
		}
		fs.mu.Lock()
		defer fs.mu.Unlock()
		return f.mem.MkdirAll(dir, perm)
	}
	return fs.FS.MkdirAll(dir, perm)
}

// OpenDir implements vfs.FS. A directory on the disk is opened there
// (fenced or not: opening writes nothing), and its syncs go through the
// fence; one that exists only in memory is opened there.
func (fs *faultFS) OpenDir(name string) (vfs.File, error) {
	d, err := fs.FS.OpenDir(name)
	if err != nil {
		if f := fs.fenceOf(); f != nil && fs.inDir(name) {
			fs.mu.Lock()
			defer fs.mu.Unlock()
			return f.mem.OpenDir(name)
		}
		return nil, err
	}
	return &faultDir{File: d, fs: fs, name: name}, nil
}

// faultDir is a directory on the disk, opened through faultFS: a failed
// sync of the data directory is a fault that pebble is not told of (it
// panics when the sync of the WAL's directory fails as it creates a WAL),
// and while the store is fenced nothing is synced. Another directory (a
// checkpoint's) reports its failures.
type faultDir struct {
	vfs.File
	fs   *faultFS
	name string
}

func (d *faultDir) sync(do func() error) error {
	ours := d.name == d.fs.dir
	if d.fs.fenced.Load() {
		if ours {
			return nil
		}
		return fmt.Errorf("sync %s: %w", d.name, errFenced)
	}
	err := d.fs.injected(true)
	if err == nil {
		err = do()
	}
	if err != nil && ours {
		d.fs.fail(d.name, fmt.Errorf("sync %s: %w", d.name, err))
		return nil
	}
	if err != nil {
		return fmt.Errorf("sync %s: %w", d.name, err) // a checkpoint's: it fails
	}
	return nil
}

// Sync implements vfs.File.
func (d *faultDir) Sync() error { return d.sync(d.File.Sync) }

// SyncData implements vfs.File.
func (d *faultDir) SyncData() error { return d.sync(d.File.SyncData) }

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
				if terr := truncateSynced(name, ws.synced); terr != nil {
					return cut, fmt.Errorf("store: cut unsynced tail of %s: %w", name, terr)
				}
				cut[name] = fi.Size() - ws.synced
			}
		}
	}
	clear(fs.wals)
	return cut, nil
}

// truncateSynced cuts name to size and fsyncs the cut: what it cut were
// writes reported as failed (or to be replayed), which a power cut must
// not bring back.
func truncateSynced(name string, size int64) error {
	f, err := os.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
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

// faultFile is a file on the disk, written through faultFS. Once the store
// is fenced, its writes go to a copy in memory (a compaction's output
// fails instead).
type faultFile struct {
	vfs.File
	fs         *faultFS
	name       string
	wal        *walState // nil unless a WAL
	compaction bool

	mu     sync.Mutex // a background fsync, Close and the diversion do not cross
	size   int64      // bytes written by Write, and by WriteAt up to its end
	mem    vfs.File   // not nil once diverted
	closed bool
}

// divertible reports whether the file's writes go to memory once the
// store is fenced: one of the engine's files, not a compaction's output.
func (f *faultFile) divertible() bool { return !f.compaction && f.fs.inDir(f.name) }

// diverted returns where the file's writes go while the store is fenced:
// nil, nil while it is not; the file's copy in memory; or errFenced for a
// compaction's output. It is called with f.mu held.
func (f *faultFile) diverted() (vfs.File, error) {
	if f.mem != nil {
		return f.mem, nil
	}
	fence := f.fs.fenceOf()
	if fence == nil {
		return nil, nil
	}
	if !f.divertible() {
		return nil, fmt.Errorf("write %s: %w", f.name, errFenced)
	}
	data, err := os.ReadFile(f.name)
	if err != nil {
		return nil, fmt.Errorf("divert %s: %w", f.name, err)
	}
	data = data[:min(int64(len(data)), f.size)]
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	m, err := fence.mem.Create(f.name, vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, fmt.Errorf("divert %s: %w", f.name, err)
	}
	if _, err := m.Write(data); err != nil {
		return nil, fmt.Errorf("divert %s: %w", f.name, err)
	}
	f.mem = m
	return m, nil
}

// failed records err, met writing p at off (n bytes of it reached the
// disk), as the fault, takes back those n bytes, and writes p to the
// file's copy in memory, or returns the error for a compaction's output.
// seq says whether p came through Write (the copy's own position is then
// off, and must move past p) or WriteAt.
func (f *faultFile) failed(p []byte, off int64, n int, seq bool, err error) (int, error) {
	err = fmt.Errorf("write %s: %w", f.name, err)
	f.fs.fail(f.name, err)
	if !f.divertible() {
		return n, err // the compaction, or the checkpoint, fails
	}
	if n > 0 && seq {
		_ = os.Truncate(f.name, off) // truncating needs no space
	}
	m, derr := f.diverted()
	if derr != nil {
		return 0, err
	}
	if seq {
		return m.Write(p)
	}
	return m.WriteAt(p, off)
}

// Write implements vfs.File.
func (f *faultFile) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if m, err := f.diverted(); m != nil || err != nil {
		if err != nil {
			return 0, err
		}
		return m.Write(p)
	}
	off := f.size
	if err := f.fs.injected(false); err != nil {
		return f.failed(p, off, 0, true, err)
	}
	if f.wal != nil {
		f.fs.mu.Lock()
		synced := f.wal.synced
		f.fs.mu.Unlock()
		p = trueSyncedOffsets(p, off, uint64(synced))
	}
	n, err := f.File.Write(p)
	if err != nil {
		return f.failed(p, off, n, true, err)
	}
	f.size += int64(n)
	if f.wal != nil {
		f.fs.mu.Lock()
		f.wal.written += int64(n)
		f.wal.records.feed(p)
		k := f.wal.records.last
		f.fs.mu.Unlock()
		if f.fs.deferWALSync {
			f.fs.raiseGood(k)
		}
	}
	return n, nil
}

// WriteAt implements vfs.File.
func (f *faultFile) WriteAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if m, err := f.diverted(); m != nil || err != nil {
		if err != nil {
			return 0, err
		}
		return m.WriteAt(p, off)
	}
	if err := f.fs.injected(false); err != nil {
		return f.failed(p, off, 0, false, err)
	}
	n, err := f.File.WriteAt(p, off)
	if err != nil {
		return f.failed(p, off, n, false, err)
	}
	f.size = max(f.size, off+int64(n))
	return n, nil
}

// current returns the file reads go to: its copy in memory once diverted.
func (f *faultFile) current() vfs.File {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mem != nil {
		return f.mem
	}
	return f.File
}

// Read implements vfs.File.
func (f *faultFile) Read(p []byte) (int, error) { return f.current().Read(p) }

// ReadAt implements vfs.File.
func (f *faultFile) ReadAt(p []byte, off int64) (int, error) { return f.current().ReadAt(p, off) }

// Stat implements vfs.File.
func (f *faultFile) Stat() (vfs.FileInfo, error) { return f.current().Stat() }

// Preallocate implements vfs.File: nothing while fenced.
func (f *faultFile) Preallocate(off, n int64) error {
	if f.fs.fenced.Load() {
		return nil
	}
	return f.File.Preallocate(off, n)
}

// sync runs a sync that pebble asked for.
func (f *faultFile) sync(do func() error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fs.fenced.Load() {
		// Nothing reaches the disk, and pebble is not told: the store
		// knows which commits failed. A compaction's output fails.
		if !f.divertible() {
			return fmt.Errorf("sync %s: %w", f.name, errFenced)
		}
		return nil
	}
	if f.wal != nil && f.fs.deferWALSync {
		// The write already happened; the fsync is deferred.
		if err := f.fs.injected(false); err != nil {
			f.fs.fail(f.name, fmt.Errorf("sync %s: %w", f.name, err))
		}
		return nil
	}
	err := f.realSync(do)
	if err != nil && f.divertible() {
		return nil // fenced now; see above
	}
	return err
}

// realSync runs do, a real sync, records what it covered and, for a WAL
// under FsyncAlways, raises the durable record. It is called with f.mu
// held; a failure is a fault.
func (f *faultFile) realSync(do func() error) error {
	if err := f.fs.injected(true); err != nil {
		err = fmt.Errorf("sync %s: %w", f.name, err)
		f.fs.fail(f.name, err)
		return err
	}
	var upTo int64
	var key uint64
	if f.wal != nil {
		f.fs.mu.Lock()
		upTo, key = f.wal.written, f.wal.records.last
		f.fs.mu.Unlock()
	}
	if err := do(); err != nil {
		err = fmt.Errorf("sync %s: %w", f.name, err)
		f.fs.fail(f.name, err)
		return err
	}
	if f.wal != nil {
		f.fs.mu.Lock()
		if upTo > f.wal.synced {
			f.wal.synced = upTo
		}
		f.fs.mu.Unlock()
		if !f.fs.deferWALSync {
			// Durable, even if another file's fault fenced the store
			// meanwhile: recovery keeps what was synced.
			f.fs.raiseGood(key)
		}
	}
	return nil
}

// Close implements vfs.File. A WAL whose fsync was deferred is synced
// first: a WAL pebble has finished with must be durable. While fenced,
// nothing is synced, and closing does not fail.
//
// The WAL stops being open for syncWALs only once that fsync is done (or
// has failed, which fences the store): until then syncWALs finds it open,
// and waits for the Close (f.mu). A review of a rare loss found that a
// background sync running during the Close skipped the WAL as synced,
// though its Close had not synced it yet: it took the writes before its
// mark off the replay list, and when the Close's fsync then failed, the
// recovery cut those acknowledged writes from the WAL.
func (f *faultFile) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	if f.mem != nil {
		_ = f.mem.Close()
	}
	if f.wal != nil {
		defer func() {
			f.fs.mu.Lock()
			f.wal.open = nil
			f.fs.mu.Unlock()
		}()
		f.fs.mu.Lock()
		unsynced := f.wal.written > f.wal.synced
		f.fs.mu.Unlock()
		if unsynced && f.fs.deferWALSync && !f.fs.fenced.Load() {
			if f.fs.testHook != nil {
				f.fs.testHook("close", f.name)
			}
			if err := f.realSync(f.File.Sync); err != nil {
				_ = f.File.Close()
				return nil // fenced now: the store knows
			}
		}
	}
	err := f.File.Close()
	if err != nil && f.fs.fenced.Load() && f.divertible() {
		return nil // the engine's file, after the fault: the store knows
	}
	return err
}

// syncWALs fsyncs every open WAL with writes its last fsync did not cover.
// It is the store's own sync (FsyncEverySec), and fails while fenced, or
// while a closed WAL holds writes that no fsync covered (its Close syncs
// them, or fences the store).
func (fs *faultFS) syncWALs() error {
	if fs.testHook != nil {
		fs.testHook("sync", "")
	}
	fs.mu.Lock()
	var files []*faultFile
	closedUnsynced := false
	for _, ws := range fs.wals {
		switch {
		case ws.written <= ws.synced:
		case ws.open != nil:
			files = append(files, ws.open)
		default:
			closedUnsynced = true
		}
	}
	fs.pruneWALsLocked()
	fs.mu.Unlock()
	if closedUnsynced {
		return errFenced
	}
	for _, f := range files {
		if fs.testHook != nil {
			fs.testHook("wait", f.name)
		}
		f.mu.Lock()
		var err error
		switch {
		case fs.fenced.Load():
			err = errFenced
		case !f.closed: // else Close synced it
			err = f.realSync(f.File.Sync)
		}
		f.mu.Unlock()
		if err != nil {
			return err
		}
	}
	if fs.fenced.Load() {
		return errFenced
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
