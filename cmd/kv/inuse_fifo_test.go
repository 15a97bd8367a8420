//go:build unix

package main

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The start-up's question whether another kv holds the data directory
// opens no FIFO (from review: opening LOCK read-only blocked for ever on a
// FIFO, before any listener and deaf to the stop, where kv had started
// and stopped at the signal before the question was asked).
func TestStartupQuestionDoesNotHangOnAFIFOLock(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, syscall.Mkfifo(filepath.Join(dir, "LOCK"), 0o644))
	var out, errOut bytes.Buffer
	o, _, done := parse([]string{"--resp-addr", "127.0.0.1:0", "--data-dir", dir}, nil, &out, &errOut)
	require.False(t, done)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // a SIGTERM during start-up
	codec := make(chan int, 1)
	go func() { codec <- serve(ctx, o, slog.New(slog.DiscardHandler), &errOut, nil) }()
	select {
	case code := <-codec:
		assert.Equal(t, exitOK, code, errOut.String())
	case <-time.After(30 * time.Second): // a start and a stop: a hang (blocked for ever), not a speed
		t.Fatal("serve still blocked in store.InUse 30s after its context ended")
	}
}
