package store

import (
	"bufio"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// InUse is a question: "the answer may be stale ... Open's own lock
// decides". Asking it must not make a store that is being opened at the
// same moment fail as if another kv held the directory. Here another
// process (a second kv starting on the same directory) asks InUse while
// this one opens the store: Open fails with ErrLocked, though no store
// holds the directory.
func TestInUseInAnotherProcessDoesNotFailOpen(t *testing.T) {
	dir := t.TempDir()
	openT(t, dir, Options{}).Close() // the LOCK file exists, as in any data directory

	child := childCmd(t, "inuse", dir)
	stdin, err := child.StdinPipe()
	require.NoError(t, err)
	stdout, err := child.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, child.Start())
	defer func() { _ = stdin.Close(); _ = child.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "ready\n", line)

	for i := range 300 {
		s, err := Open(dir, Options{})
		require.NoError(t, err, "open %d, while another process asks InUse", i)
		require.NoError(t, s.Close())
	}
}

// The same within one process: InUse (in a daemon's start-up, or any
// caller of the exported function) racing an Open of the directory.
func TestInUseInThisProcessDoesNotFailOpen(t *testing.T) {
	dir := t.TempDir()
	openT(t, dir, Options{}).Close()

	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() {
			_ = InUse(dir)
		}
	}()
	defer func() { stop.Store(true); <-done }()

	var locked int
	for range 300 {
		s, err := Open(dir, Options{})
		if errors.Is(err, ErrLocked) {
			locked++
			continue
		}
		require.NoError(t, err)
		require.NoError(t, s.Close())
	}
	assert.Zero(t, locked, "opens refused as locked while InUse asked, of 300")
}
