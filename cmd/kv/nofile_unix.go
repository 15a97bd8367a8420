//go:build unix

package main

import "syscall"

// openFileLimit returns the process's open-file limit (ulimit -n), which
// Go has raised at start to its hard limit; 0 when it cannot be read or
// there is none.
func openFileLimit() uint64 {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0
	}
	// Rlimit.Cur is an int64 on FreeBSD and DragonFly, where no limit
	// (RLIM_INFINITY) is -1: converted, it is the same ^uint64(0) as
	// elsewhere.
	cur := uint64(l.Cur)
	if cur == ^uint64(0) {
		return 0
	}
	return cur
}
