//go:build linux

package resp

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/kvproject/kv/bucket"
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
	stuck.send(strings.Repeat("HGET big f\r\n", 32) + "HSET done f 1\r\n") // 32 MiB of replies, never read
	// Blocked: replies wait in the client's socket, and more behind them;
	// the loop has run every command (it runs a blocked client's on, up
	// to MaxReplyBytes), and has nothing left to do but wait.
	require.Eventually(t, func() bool { return unreadBytes(t, stuck.nc) > 0 }, 10*time.Second, time.Millisecond)
	rc := tree.client(t)
	require.Eventually(t, func() bool {
		return rc.HExists(context.Background(), "done", "f").Val()
	}, 10*time.Second, time.Millisecond)

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

// A client that the loop hands to a goroutine of its own after shutdown
// has closed every client (the loop was busy with a long command when the
// time ran out) is closed too: shutdown does not wait for its WriteTimeout.
func TestLateHandoffIsClosedByShutdown(t *testing.T) {
	if goroutinePerClient {
		t.Skip("the event loop is off")
	}
	tree := start(t, Config{})
	ctx := context.Background()
	value := strings.Repeat("x", 1<<20)
	require.NoError(t, tree.client(t).HSet(ctx, "big", "f", value).Err())
	require.NoError(t, tree.client(t).HSet(ctx, "slow", "f", "v").Err())

	entered, release, swept := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var once sync.Once
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := New(Config{
		Registry: tree.root.Registry(), Events: tree.root.Events(),
		ShutdownTimeout: 2 * time.Second, WriteTimeout: time.Hour,
		Logger: slog.New(onMessage{"clients did not finish in time", swept, new(sync.Once)}),
		testHookLive: func(b *bucket.Bucket) {
			if b.Name() == "slow" {
				once.Do(func() { close(entered); <-release }) // a long command on the loop
			}
		},
	})
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- srv.ServeListener(sctx, ln) }()
	ts := &testServer{root: tree.root, srv: srv, addr: ln.Addr().String()}

	// Blocked on its replies, with a SAVE (a handoff) behind them and
	// 64 MiB more that it will never read.
	late := ts.raw(t)
	late.send(strings.Repeat("HGET big f\r\n", 16) + "SAVE\r\n" + strings.Repeat("HGET big f\r\n", 64))
	require.Eventually(t, func() bool { return unreadBytes(t, late.nc) > 0 }, 10*time.Second, time.Millisecond)
	ts.raw(t).send("HGET slow f\r\n")
	<-entered
	stop()
	<-swept // shutdown's time is up, and the loop is still busy
	close(release)
	for range 16 { // the replies before SAVE; then the client reads no more
		require.Equal(t, "$1048576", late.line())
		require.Equal(t, value, late.line())
	}
	select {
	case err := <-served:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(30 * time.Second):
		t.Fatal("shutdown waits for the handed-off client's WriteTimeout")
	}
}

// onMessage is a slog handler that closes ch at the first record whose
// message contains msg.
type onMessage struct {
	msg  string
	ch   chan struct{}
	once *sync.Once
}

func (h onMessage) Enabled(context.Context, slog.Level) bool { return true }
func (h onMessage) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h onMessage) WithGroup(string) slog.Handler            { return h }
func (h onMessage) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.msg) {
		h.once.Do(func() { close(h.ch) })
	}
	return nil
}
