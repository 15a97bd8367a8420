package store

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A wait that finds its group held returns the channel of that hold,
// read under the queue's lock: once the lock is let go, the hold may end
// and a new one take the same group (join writes its held and unheld),
// and reading unheld then raced with that write (go test -race).
func TestWaitForAHoldReadsItsChannelUnderTheLock(t *testing.T) {
	s := openT(t, t.TempDir(), Options{Fsync: FsyncNo})
	defer func() { require.NoError(t, s.Close()) }()
	require.NoError(t, s.CreateBucket("a"))
	for range 20 {
		release := s.Hold()
		w1, err := s.ApplyPairsNoWait("a", Put("k", []byte("1")))
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() { done <- w1.WaitOrUndo(false, nil) }()
		// Until the wait waits for the hold (looked at without a lock,
		// which would order the test after the wait's read).
		require.Eventually(t, func() bool {
			buf := make([]byte, 1<<20)
			stacks := string(buf[:runtime.Stack(buf, true)])
			for _, g := range strings.Split(stacks, "\n\n") {
				if strings.Contains(g, "[chan receive") && strings.Contains(g, "store.(*Store).await") {
					return true
				}
			}
			return false
		}, 10*time.Second, time.Millisecond)
		// The hold ends, and another takes the same group at once.
		release()
		release2 := s.Hold()
		w2, err := s.ApplyPairsNoWait("a", Put("k", []byte("2")))
		require.NoError(t, err)
		release2()
		require.NoError(t, <-done)
		require.NoError(t, w2.Wait())
	}
}
