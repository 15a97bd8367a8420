package store

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// selFS fails only some kinds of I/O, by mode.
const (
	selNone     = iota
	selSST      // creating an sstable: ENOSPC
	selDirSync  // directory syncs: EIO
	selManifest // MANIFEST writes: ENOSPC
	selRename   // renames: EIO
	selSSTSync  // sstable syncs: EIO
	selModes
)

type selFS struct {
	vfs.FS
	mode *atomic.Int32
}

func (fs selFS) on(m int32) bool { return fs.mode.Load() == m }

func (fs selFS) wrapF(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return f, err
	}
	return &selFile{File: f, fs: fs, name: name}, nil
}

func (fs selFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	if fs.on(selSST) && strings.HasSuffix(name, ".sst") {
		return nil, &pathErr{"create", name, syscall.ENOSPC}
	}
	f, err := fs.FS.Create(name, c)
	return fs.wrapF(name, f, err)
}

func (fs selFS) ReuseForWrite(o, n string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(o, n, c)
	return fs.wrapF(n, f, err)
}

func (fs selFS) Rename(o, n string) error {
	if fs.on(selRename) {
		return &pathErr{"rename", o, syscall.EIO}
	}
	return fs.FS.Rename(o, n)
}

func (fs selFS) OpenDir(name string) (vfs.File, error) {
	f, err := fs.FS.OpenDir(name)
	if err != nil {
		return f, err
	}
	return &selFile{File: f, fs: fs, name: name, dir: true}, nil
}

type pathErr struct {
	op, path string
	err      error
}

func (e *pathErr) Error() string { return fmt.Sprintf("injected %s %s: %v", e.op, e.path, e.err) }
func (e *pathErr) Unwrap() error { return e.err }

type selFile struct {
	vfs.File
	fs   selFS
	name string
	dir  bool
}

func (f *selFile) manifest() bool { return strings.HasPrefix(filepath.Base(f.name), "MANIFEST") }
func (f *selFile) sst() bool      { return strings.HasSuffix(f.name, ".sst") }

func (f *selFile) Write(p []byte) (int, error) {
	if f.fs.on(selManifest) && f.manifest() {
		return 0, &pathErr{"write", f.name, syscall.ENOSPC}
	}
	return f.File.Write(p)
}

func (f *selFile) syncErr() error {
	if f.dir && f.fs.on(selDirSync) {
		return &pathErr{"sync", f.name, syscall.EIO}
	}
	if f.fs.on(selSSTSync) && f.sst() {
		return &pathErr{"sync", f.name, syscall.EIO}
	}
	return nil
}

func (f *selFile) Sync() error {
	if err := f.syncErr(); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *selFile) SyncData() error {
	if err := f.syncErr(); err != nil {
		return err
	}
	return f.File.SyncData()
}

func (f *selFile) SyncTo(n int64) (bool, error) {
	if err := f.syncErr(); err != nil {
		return false, err
	}
	return f.File.SyncTo(n)
}
