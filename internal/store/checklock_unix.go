//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package store

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// sharedLock takes a shared (read) lock on the lock file path, which a
// store's exclusive lock excludes; a missing file is no lock at all: no
// store has run in the directory (a checkpoint).
func sharedLock(path string) (io.Closer, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return io.NopCloser(nil), nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: check: lock %s: %w", path, err)
	}
	lk := syscall.Flock_t{Type: syscall.F_RDLCK, Whence: io.SeekStart}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk); err != nil {
		f.Close()
		if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES) {
			return nil, fmt.Errorf("%w: %s: %w; stop the daemon using it, or check a checkpoint", ErrLocked, path, errHeld)
		}
		return nil, fmt.Errorf("store: check: lock %s: %w", path, err)
	}
	return f, nil
}

// lockHeld reports, wrapping ErrLocked, whether another process holds a
// write lock on the lock file path, as a store does, without taking a
// lock itself (F_GETLK). A missing file, or one that is not a regular
// file, is no lock.
func lockHeld(path string) error {
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	lk := syscall.Flock_t{Type: syscall.F_RDLCK, Whence: io.SeekStart}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_GETLK, &lk); err != nil || lk.Type == syscall.F_UNLCK {
		return nil
	}
	return fmt.Errorf("%w: %s: %w (process %d)", ErrLocked, path, errHeld, lk.Pid)
}
