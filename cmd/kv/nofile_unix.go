//go:build unix

package main

import "syscall"

// openFileLimit returns the process's open-file limit (ulimit -n), which
// Go has raised at start to its hard limit; 0 when it cannot be read or
// there is none.
func openFileLimit() uint64 {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil || l.Cur == ^uint64(0) {
		return 0
	}
	return l.Cur
}
