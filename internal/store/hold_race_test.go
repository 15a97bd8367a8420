package store

import (
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A client's WaitOrUndo that found its group not held yet must still not
// commit it once a Hold keeps it: a transaction's writes that join the
// group between the client's look and its commit would otherwise be
// split, the first of them committed alone. The client waits on a write
// of its own while a holder starts a Hold and makes several writes, over
// and over: every time, the holder's writes share one group.
func TestHoldNotSplitByAWaitThatLookedBefore(t *testing.T) {
	s := openT(t, t.TempDir(), Options{Fsync: FsyncNo})
	defer func() { require.NoError(t, s.Close()) }()
	require.NoError(t, s.CreateBucket("client"))
	require.NoError(t, s.CreateBucket("tx"))
	const rounds = 2000
	deadline := time.Now().Add(2 * time.Minute)
	for i := range rounds {
		w, err := s.ApplyPairsNoWait("client", Put("k", []byte("v")))
		require.NoError(t, err)
		waited := make(chan error, 1)
		started := make(chan struct{})
		go func() {
			close(started)
			waited <- w.WaitOrUndo(false, nil)
		}()
		<-started
		for range i % 64 { // a varying head start for the wait
			runtime.Gosched()
		}
		release := s.Hold()
		var ws []Waiter
		for j := range 3 {
			tw, err := s.ApplyPairsNoWait("tx", Put(string(rune('a'+j)), []byte("v")))
			require.NoError(t, err)
			ws = append(ws, tw)
			runtime.Gosched() // a transaction's commands take their time
		}
		release()
		for _, tw := range ws {
			require.NoError(t, tw.WaitOrUndo(false, nil))
		}
		select {
		case err := <-waited:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Fatal("the client's wait did not return")
		}
		require.Truef(t, ws[0].g == ws[1].g && ws[1].g == ws[2].g,
			"round %d: the transaction's writes were split across groups", i)
		if time.Now().After(deadline) {
			break
		}
	}
}
