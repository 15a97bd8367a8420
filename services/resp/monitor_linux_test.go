//go:build linux

package resp

import (
	"bufio"
	"context"
	"net"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// stuckMonitor is a monitor that has stopped reading: its socket is full,
// and its writer goroutine waits in a write. hsets is how many HSETs of
// cl's have run (and shown) meanwhile.
type stuckMonitor struct {
	nc    net.Conn
	rd    *bufio.Reader
	cl    *redis.Client
	hsets int
}

// startStuckMonitor makes a monitor with a small receive buffer, then runs
// HSETs until its writer waits in a write, and a few more, whose lines
// wait in its buffer.
func startStuckMonitor(t *testing.T, ts *testServer) *stuckMonitor {
	t.Helper()
	nc := dialSmallReceiveBuffer(t, ts.addr, 4096)
	rd := bufio.NewReaderSize(nc, 1<<20)
	_, err := nc.Write([]byte(resp("MONITOR")))
	require.NoError(t, err)
	require.NoError(t, nc.SetReadDeadline(time.Now().Add(10*time.Second)))
	l, err := rd.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "+OK\r\n", l) // and nothing read from now on
	ctx := context.Background()
	m := &stuckMonitor{nc: nc, rd: rd, cl: ts.client(t)}
	value := strings.Repeat("x", 4096)
	hset := func(n int) {
		pipe := m.cl.Pipeline()
		for range n {
			pipe.HSet(ctx, "h", "f"+strconv.Itoa(m.hsets), value)
			m.hsets++
		}
		_, err := pipe.Exec(ctx)
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool {
		hset(16)
		return stackHas("resp.(*monitor).write", "waitWrite")
	}, 20*time.Second, time.Millisecond, "the monitor's writer waits for its socket")
	hset(16) // lines that wait in its buffer
	return m
}

// stackHas reports whether a goroutine's stack holds every one of frames.
func stackHas(frames ...string) bool {
	buf := make([]byte, 8<<20)
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		all := true
		for _, f := range frames {
			all = all && strings.Contains(g, f)
		}
		if all {
			return true
		}
	}
	return false
}

// A monitor that does not read its socket, and sends RESET, waits for its
// writer goroutine's write, up to WriteTimeout: it must not hold the
// transactions' lock meanwhile, or an EXEC waits for it, and every other
// client behind the EXEC: the whole server stalls for WriteTimeout (as
// for a subscriber: TestSlowSubscriberDoesNotHoldTransactionsBack).
func TestStuckMonitorResetDoesNotHoldTransactionsBack(t *testing.T) {
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			ts := start(t, Config{GoroutinePerClient: mode.goroutinePerClient, WriteTimeout: time.Minute})
			m := startStuckMonitor(t, ts)
			_, err := m.nc.Write([]byte(resp("RESET")))
			require.NoError(t, err)
			require.Eventually(t, func() bool { return stackHas("resp.(*monitor).stop", "resp.(*Server).reset") },
				10*time.Second, time.Millisecond, "RESET waits for the writer")

			requireNotHeldBack(t, ts, "the monitor")
		})
	}
}

// RESET ends MONITOR mode after every line of the commands that ran
// before it: as in Redis, whose lines wait in the reply buffer before
// +RESET. The lines still waiting in the monitor's buffer are not
// dropped silently.
func TestMonitorResetWritesTheLinesBeforeIt(t *testing.T) {
	ts := start(t, Config{WriteTimeout: time.Minute})
	m := startStuckMonitor(t, ts)
	_, err := m.nc.Write([]byte(resp("RESET")))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return stackHas("resp.(*monitor).stop", "resp.(*Server).reset") },
		10*time.Second, time.Millisecond, "RESET waits for the writer")
	hsets := 0
	for {
		require.NoError(t, m.nc.SetReadDeadline(time.Now().Add(10*time.Second)))
		l, err := m.rd.ReadString('\n')
		require.NoError(t, err, "after %d lines of %d", hsets, m.hsets)
		if l == "+RESET\r\n" {
			break
		}
		require.Regexp(t, monitorLine, strings.TrimSuffix(l, "\r\n"))
		if strings.Contains(l, `"hset"`) {
			hsets++
		}
	}
	require.Equal(t, m.hsets, hsets, "every HSET before RESET is shown before +RESET")
}
