package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/internal/store"
	"github.com/kvproject/kv/internal/testlog"
)

// slowRecovery is a data directory whose opening waits until release is
// closed, as the recovery of millions of keys takes seconds.
type slowRecovery struct {
	opening chan struct{} // closed when the recovery begins
	release chan struct{}
	opened  chan struct{} // closed when store.Open has returned
}

func newSlowRecovery() *slowRecovery {
	return &slowRecovery{opening: make(chan struct{}), release: make(chan struct{}), opened: make(chan struct{})}
}

func (r *slowRecovery) open(dir string, o store.Options) (*store.Store, error) {
	close(r.opening)
	<-r.release
	defer close(r.opened)
	return store.Open(dir, o)
}

// serveSlowRecovery runs serve on a data directory whose recovery waits,
// and signals it (ctx) once the recovery has begun.
func serveSlowRecovery(t *testing.T, dir string, shutdownTimeout string) (*slowRecovery, *testlog.Buffer, chan int) {
	t.Helper()
	var out, errOut testlog.Buffer
	o, _, done := parse([]string{"--resp-addr", "127.0.0.1:0", "--data-dir", dir, "--shutdown-timeout", shutdownTimeout}, nil, &out, &errOut)
	require.False(t, done, errOut.String())
	r := newSlowRecovery()
	o.open = r.open
	var logs testlog.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	code := make(chan int, 1)
	go func() { code <- serve(ctx, o, logs.Logger(slog.LevelInfo), &errOut, nil) }()
	<-r.opening
	cancel()
	return r, &logs, code
}

// A SIGTERM during a recovery longer than --shutdown-timeout ends kv
// within the timeout (exit 1, said in the log); before, kv waited for
// the whole recovery, then started serving, and only then stopped.
func TestSignalDuringALongRecoveryExitsWithinTheTimeout(t *testing.T) {
	dir := t.TempDir()
	r, logs, code := serveSlowRecovery(t, dir, "100ms")
	select {
	case c := <-code:
		assert.Equal(t, exitFailed, c)
	case <-time.After(30 * time.Second):
		close(r.release)
		t.Fatal("serve waited for the recovery past --shutdown-timeout")
	}
	assert.Contains(t, logs.String(), "the recovery did not end in time")
	// The recovery that ends later closes its store: the directory is
	// free again, and nothing was served.
	close(r.release)
	<-r.opened
	require.Eventually(t, func() bool { return store.InUse(dir) == nil }, 30*time.Second, 5*time.Millisecond) // the rest of a recovery, then a close
	assert.NotContains(t, logs.String(), "kv started")
}

// A SIGTERM during a recovery that ends within --shutdown-timeout waits
// for it, closes the store and exits 0 without serving.
func TestSignalDuringAShortRecoveryStopsCleanlyWithoutServing(t *testing.T) {
	dir := t.TempDir()
	r, logs, code := serveSlowRecovery(t, dir, "1m")
	close(r.release)
	assert.Equal(t, exitOK, <-code)
	assert.NoError(t, store.InUse(dir), "the store is closed before serve returns")
	assert.Contains(t, logs.String(), "kv stopped before serving")
	assert.NotContains(t, logs.String(), "kv started")
}

// An HTTP request sent during the recovery waits in the listen backlog
// and is answered once kv serves: /readyz gets 200, never a 503 for a
// recovery under way (README, Limits and caveats).
func TestReadyzDuringTheRecoveryWaitsForIt(t *testing.T) {
	free, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	httpAddr := free.Addr().String()
	require.NoError(t, free.Close())

	var out, errOut testlog.Buffer
	o, _, done := parse([]string{"--resp-addr", "127.0.0.1:0", "--http-addr", httpAddr, "--data-dir", t.TempDir()}, nil, &out, &errOut)
	require.False(t, done, errOut.String())
	r := newSlowRecovery()
	o.open = r.open
	ctx, cancel := context.WithCancel(context.Background())
	code := make(chan int, 1)
	serving := make(chan listening, 1)
	go func() {
		code <- serve(ctx, o, slog.New(slog.DiscardHandler), &errOut, func(l listening) { serving <- l })
	}()
	<-r.opening

	// The listener is open: the request is sent while the recovery runs.
	nc, err := net.Dial("tcp", httpAddr)
	require.NoError(t, err)
	defer nc.Close()
	_, err = io.WriteString(nc, "GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
	require.NoError(t, err)
	close(r.release)
	<-serving
	require.NoError(t, nc.SetReadDeadline(time.Now().Add(30*time.Second)))
	res, err := http.ReadResponse(bufio.NewReader(nc), nil)
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusOK, res.StatusCode)

	cancel()
	assert.Equal(t, exitOK, <-code)
}
