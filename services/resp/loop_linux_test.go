//go:build linux

package resp

import (
	"context"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// Stopping the server while a client is blocked on its replies: the loop
// waits for it without spinning (its wake-up must not stay ready).
func TestDrainWaitsWithoutSpinning(t *testing.T) {
	if goroutinePerClient {
		t.Skip("the event loop is off")
	}
	tree := start(t, Config{})
	require.NoError(t, tree.client(t).HSet(context.Background(), "big", "f", strings.Repeat("x", 1<<20)).Err())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	drain := time.Second
	srv := New(Config{Registry: tree.root.Registry(), Events: tree.root.Events(), WriteTimeout: time.Minute, ShutdownTimeout: drain})
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.ServeListener(ctx, ln) }()
	stuck := (&testServer{root: tree.root, srv: srv, addr: ln.Addr().String()}).raw(t)
	stuck.send(strings.Repeat("HGET big f\r\n", 32)) // 32 MiB of replies, never read
	// Blocked: replies wait in the client's socket, and more behind them.
	require.Eventually(t, func() bool { return unreadBytes(t, stuck.nc) > 0 }, 10*time.Second, time.Millisecond)

	before, began := cpuTime(t), time.Now()
	stop()
	require.ErrorIs(t, <-served, context.Canceled)
	cpu, wall := cpuTime(t)-before, time.Since(began)
	require.GreaterOrEqual(t, wall, drain*9/10, "the blocked client was waited for")
	assert.Less(t, cpu, wall/4, "the loop spun while it waited: %v of CPU in %v", cpu, wall)
}

// cpuTime is the process's CPU time so far.
func cpuTime(t *testing.T) time.Duration {
	var ru syscall.Rusage
	require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// unreadBytes is how many bytes wait in nc's socket to be read.
func unreadBytes(t *testing.T, nc net.Conn) int {
	raw, err := nc.(*net.TCPConn).SyscallConn()
	require.NoError(t, err)
	n := 0
	require.NoError(t, raw.Control(func(fd uintptr) { n, err = unix.IoctlGetInt(int(fd), unix.SIOCINQ) }))
	require.NoError(t, err)
	return n
}
