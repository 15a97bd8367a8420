package store

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// inUse holds the data directories that this process's stores have
// locked. Check reads a directory under a shared lock of its LOCK file,
// which another process's store (holding it exclusively) refuses; but
// fcntl locks belong to a process, not to a descriptor, so within one
// process Check must learn it here, and must not touch the file: closing
// any descriptor of it would drop the store's own lock.
var inUse struct {
	sync.Mutex
	dirs   map[string]int
	checks map[string]*checkLock // the Checks reading a directory
}

// checkLock is the shared lock that the Checks of one directory in this
// process share: one descriptor, since closing any descriptor of the file
// would drop the lock the others count on.
type checkLock struct {
	lock  io.Closer
	n     int           // Checks holding it
	ready chan struct{} // while one Check takes the lock; nil once taken
}

// reserveForStore marks dir held by a store before its lock is taken; it
// fails while a Check of this process reads dir.
func reserveForStore(dir string) error {
	inUse.Lock()
	defer inUse.Unlock()
	if inUse.checks[dir] != nil {
		return fmt.Errorf("%w: %s: kv check is reading it in this process", ErrLocked, dir)
	}
	if inUse.dirs == nil {
		inUse.dirs = make(map[string]int)
	}
	inUse.dirs[dir]++
	return nil
}

// releaseForStore records that a store of this process no longer holds
// dir, as reserveForStore recorded it did (once its lock is closed).
func releaseForStore(dir string) {
	inUse.Lock()
	defer inUse.Unlock()
	if inUse.dirs[dir]--; inUse.dirs[dir] <= 0 {
		delete(inUse.dirs, dir)
	}
}

// lockForCheck takes a shared lock on dir for Check, which reads and
// writes nothing: it fails, wrapping ErrLocked, while a store (of this
// process or another) holds dir; it neither creates the LOCK file nor
// needs write access (a checkpoint has no LOCK file; a backup may be on
// read-only media). The returned Closer releases it.
func lockForCheck(dir string) (io.Closer, error) {
	canonical, err := resolveDir(dir) // the name a store of it has
	if err != nil {
		return nil, fmt.Errorf("store: check %s: %w", dir, err)
	}
	inUse.Lock()
	defer inUse.Unlock()
	for {
		if inUse.dirs[canonical] > 0 {
			return nil, fmt.Errorf("%w: %s: a store in this process holds it; stop the daemon using it, or check a checkpoint", ErrLocked, dir)
		}
		c := inUse.checks[canonical]
		if c == nil {
			break
		}
		if c.ready == nil { // taken
			return c.closer(canonical), nil
		}
		// Another Check takes the lock: wait for it outside the mutex.
		ready := c.ready
		inUse.Unlock()
		<-ready
		inUse.Lock()
	}
	// Reserve the directory (reserveForStore refuses it from now on), and
	// open and lock the file outside the mutex: os.Open may block (a FIFO,
	// a hung mount), and every store's Open and Close take the mutex.
	c := &checkLock{ready: make(chan struct{})}
	if inUse.checks == nil {
		inUse.checks = make(map[string]*checkLock)
	}
	inUse.checks[canonical] = c
	inUse.Unlock()
	l, err := sharedLock(filepath.Join(canonical, "LOCK"))
	inUse.Lock()
	close(c.ready)
	c.ready = nil
	if err != nil {
		delete(inUse.checks, canonical)
		return nil, err
	}
	c.lock = l
	return c.closer(canonical), nil
}

// InUse reports whether a store, of this process or another, holds dir:
// an error wrapping ErrLocked if one does, nil if none does, or dir does
// not exist yet, or cannot be looked at (Open will say why). It takes no
// lock, so it never makes an Open fail, and creates and changes nothing:
// it asks the system whether another process holds the lock file
// (fcntl's F_GETLK, where the system has it; elsewhere it says nil), and
// opens only a regular file (a FIFO's open would block). A daemon asks
// before it takes its ports, so that a second daemon on one data
// directory is told so, not that its port is busy. The answer may be
// stale by the time the caller opens dir: Open's own lock decides.
func InUse(dir string) error {
	canonical, err := resolveDir(dir)
	if err != nil {
		return nil
	}
	// Under the mutex, no store of this process takes or drops its lock,
	// and no Check its shared one: closing the descriptor that lockHeld
	// opens would drop them (fcntl locks belong to the process).
	inUse.Lock()
	defer inUse.Unlock()
	if inUse.dirs[canonical] > 0 {
		return fmt.Errorf("%w: %s: a store in this process holds it", ErrLocked, dir)
	}
	if inUse.checks[canonical] != nil {
		return nil // a Check of this process reads it: no store holds it
	}
	return lockHeld(filepath.Join(canonical, "LOCK"))
}

// closer counts one more Check holding c (inUse held) and returns its
// Closer: the last to close closes the file.
func (c *checkLock) closer(canonical string) io.Closer {
	c.n++
	var once sync.Once
	return closerFunc(func() (err error) {
		once.Do(func() {
			inUse.Lock()
			defer inUse.Unlock()
			if c.n--; c.n == 0 {
				delete(inUse.checks, canonical)
				err = c.lock.Close()
			}
		})
		return err
	})
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// errHeld is sharedLock's report that another process holds the lock.
var errHeld = errors.New("held by another process")

// noLock is pebble's lock while Check holds its own (pebble's would create
// and lock the file for writing).
type noLock struct{ vfs.FS }

func (noLock) Lock(string) (io.Closer, error) { return io.NopCloser(nil), nil }
