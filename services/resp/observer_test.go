package resp

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type recordingObserver struct {
	mu       sync.Mutex
	commands []string
	elapsed  []time.Duration
	failed   map[string]bool
	clients  int
}

func (o *recordingObserver) ObserveCommand(protocol, command string, elapsed time.Duration, failed bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if protocol != Protocol || elapsed < 0 {
		panic("bad observation")
	}
	o.commands = append(o.commands, command)
	o.elapsed = append(o.elapsed, elapsed)
	if failed {
		o.failed[command] = true
	}
}

func (o *recordingObserver) ObserveClients(protocol string, delta int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.clients += delta
}

func (o *recordingObserver) snapshot() ([]string, map[string]bool, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	f := map[string]bool{}
	for k, v := range o.failed {
		f[k] = v
	}
	return append([]string(nil), o.commands...), f, o.clients
}

func TestObserver(t *testing.T) {
	obs := &recordingObserver{failed: map[string]bool{}}
	ts := start(t, Config{Observer: obs})
	r := ts.raw(t)
	r.send("HSET h f v\r\nhget h f\r\nHGET h\r\nNOSUCH\r\n")
	assert.Equal(t, ":1", r.line())
	assert.Equal(t, "$1", r.line())
	assert.Equal(t, "v", r.line())
	assert.Equal(t, "-ERR wrong number of arguments for 'hget' command", r.line())
	assert.Contains(t, r.line(), "ERR unknown command")
	cmds, failed, clients := obs.snapshot()
	assert.Equal(t, []string{"hset", "hget", "hget", "unknown"}, cmds)
	assert.Equal(t, map[string]bool{"hget": true, "unknown": true}, failed)
	assert.Equal(t, 1, clients)

	require.NoError(t, r.nc.Close())
	require.Eventually(t, func() bool { _, _, n := obs.snapshot(); return n == 0 }, 10*time.Second, time.Millisecond)
}

// A command's latency runs from its start (or the end of the command
// before it in a pipeline) to its end: never over the wait for the client.
func TestObserverLatencyExcludesTheWaitForRequests(t *testing.T) {
	obs := &recordingObserver{failed: map[string]bool{}}
	ts := start(t, Config{Observer: obs})
	r := ts.raw(t)
	const idle = 300 * time.Millisecond
	r.send("PING\r\n")
	assert.Equal(t, "+PONG", r.line())
	time.Sleep(idle) // the client thinks: not the server's time
	r.send("PING\r\nPING\r\n")
	assert.Equal(t, "+PONG", r.line())
	assert.Equal(t, "+PONG", r.line())

	obs.mu.Lock()
	defer obs.mu.Unlock()
	require.Len(t, obs.elapsed, 3)
	for i, d := range obs.elapsed {
		assert.Less(t, d, idle, "command %d", i)
	}
}
