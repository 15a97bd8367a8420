//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package store

import (
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A Check whose lock file blocks on open (a FIFO here; a hung network
// mount) holds up no store of the process but its own directory's: the
// file is opened outside the table's mutex, which every Open and Close
// take.
func TestABlockedCheckDoesNotHoldUpOtherStores(t *testing.T) {
	checked := t.TempDir()
	fifo := filepath.Join(checked, "LOCK")
	require.NoError(t, syscall.Mkfifo(fifo, 0o644))
	canonical, err := filepath.EvalSymlinks(checked)
	require.NoError(t, err)
	locked := make(chan io.Closer, 1)
	go func() { l, _ := lockForCheck(checked); locked <- l }()
	require.Eventually(t, func() bool { // reserved: it is opening the file
		inUse.Lock()
		defer inUse.Unlock()
		return inUse.checks[canonical] != nil
	}, 10*time.Second, time.Millisecond)

	done := make(chan error, 1)
	go func() {
		s, err := Open(t.TempDir(), Options{})
		if err == nil {
			err = s.Close()
		}
		done <- err
	}()
	var openErr error
	opened := assert.Eventually(t, func() bool {
		select {
		case openErr = <-done:
			return true
		default:
			return false
		}
	}, 10*time.Second, time.Millisecond, "an unrelated store opens and closes while the Check waits")
	_, err = Open(checked, Options{})
	assert.ErrorIs(t, err, ErrLocked, "the checked directory itself is refused")

	w, err := os.OpenFile(fifo, os.O_WRONLY, 0) // a writer: the Check's open returns
	require.NoError(t, err)
	require.NoError(t, w.Close())
	if l := <-locked; l != nil {
		require.NoError(t, l.Close())
	}
	if !opened {
		<-done
	}
	require.NoError(t, openErr)
}
