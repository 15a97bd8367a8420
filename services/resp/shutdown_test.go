package resp

import (
	"context"
	"io"
	"net"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/internal/store"
)

// shutdowns counts the calls of a test server's Config.Shutdown.
type shutdowns struct{ n atomic.Int64 }

func (s *shutdowns) hook(c *Config) { c.Shutdown = func() { s.n.Add(1) } }

// startCountingShutdowns starts an in-memory test server whose
// Config.Shutdown counts its calls.
func startCountingShutdowns(t *testing.T) (*testServer, *shutdowns) {
	t.Helper()
	sd := new(shutdowns)
	cfg := Config{}
	sd.hook(&cfg)
	return start(t, cfg), sd
}

// SHUTDOWN's refusals are Redis 7's, checked against redis-server 7.0.15,
// and a refused SHUTDOWN neither stops the server nor closes the client.
func TestShutdownRefusals(t *testing.T) {
	ctx := context.Background()
	ts, sd := startCountingShutdowns(t)
	rc := ts.client(t)
	for _, tc := range []struct {
		args []any
		want string
	}{
		{[]any{"SHUTDOWN", "SAVE", "NOSAVE"}, "ERR syntax error"},
		{[]any{"SHUTDOWN", "nosave", "save"}, "ERR syntax error"},
		{[]any{"SHUTDOWN", "bogus"}, "ERR syntax error"},
		{[]any{"SHUTDOWN", "NOW", "bogus"}, "ERR syntax error"},
		{[]any{"SHUTDOWN", "ABORT", "NOW"}, "ERR syntax error"},
		{[]any{"SHUTDOWN", "FORCE", "abort"}, "ERR syntax error"},
		{[]any{"SHUTDOWN", "ABORT"}, "ERR No shutdown in progress."},
		// In memory there is no checkpoint to write: the server goes on.
		{[]any{"SHUTDOWN", "SAVE"}, "ERR Errors trying to SHUTDOWN. Check logs."},
		{[]any{"SHUTDOWN", "NOW", "SAVE"}, "ERR Errors trying to SHUTDOWN. Check logs."},
	} {
		assert.EqualError(t, rc.Do(ctx, tc.args...).Err(), tc.want, "%v", tc.args)
	}
	assert.Zero(t, sd.n.Load())

	// Not in a transaction, as Redis (no_multi): EXEC then discards it.
	r := ts.raw(t)
	r.send("MULTI\r\nSHUTDOWN\r\nEXEC\r\n")
	r.expect("+OK", "-ERR Command not allowed inside a transaction", "-EXECABORT Transaction discarded because of previous errors.")
	assert.Zero(t, sd.n.Load())
	assert.Equal(t, "PONG", rc.Ping(ctx).Val(), "the client is still served")

	// A server whose program does not let clients stop it says so.
	off := start(t, Config{}).client(t)
	err := off.Shutdown(ctx).Err()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "SHUTDOWN is off")
	assert.Equal(t, "PONG", off.Ping(ctx).Val())
}

// SHUTDOWN calls the program's stop and closes the client that sent it,
// with no reply, as Redis does: go-redis's Shutdown takes the end of the
// connection for success. The other clients are untouched by the command
// itself (the program's stop closes them).
func TestShutdownClosesTheClientWithoutAReply(t *testing.T) {
	ctx := context.Background()
	ts, sd := startCountingShutdowns(t)
	other := ts.client(t)
	require.NoError(t, other.HSet(ctx, "h", "f", "v").Err())

	require.NoError(t, ts.client(t).Shutdown(ctx).Err(), "go-redis sees the end of the connection, as from Redis")
	assert.Equal(t, int64(1), sd.n.Load())

	for i, cmd := range []string{"SHUTDOWN NOSAVE NOW\r\n", "shutdown force\r\n", "*1\r\n$8\r\nshutdown\r\n"} {
		r := ts.raw(t)
		r.send(cmd)
		require.NoError(t, r.nc.SetReadDeadline(time.Now().Add(10*time.Second)))
		var got []byte
		buf := make([]byte, 64)
		for {
			n, err := r.nc.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				var ne net.Error
				require.False(t, errorsAs(err, &ne) && ne.Timeout(), "%q: the server closes the client", cmd)
				break
			}
		}
		assert.Empty(t, got, "%q: no reply", cmd)
		assert.Equal(t, int64(i+2), sd.n.Load())
	}
	assert.Equal(t, "v", other.HGet(ctx, "h", "f").Val())
}

// SHUTDOWN SAVE writes a checkpoint before the program stops; if the
// checkpoint fails, the server goes on and says so, unless FORCE.
func TestShutdownSave(t *testing.T) {
	ctx := context.Background()
	var sd shutdowns
	ds, fb := startFailingBackups(t, sd.hook)
	rc := ds.client(t)
	require.NoError(t, rc.HSet(ctx, "h", "f", "v").Err())

	fb.fail.Store(true)
	assert.EqualError(t, rc.ShutdownSave(ctx).Err(), "ERR Errors trying to SHUTDOWN. Check logs.")
	assert.Zero(t, sd.n.Load())
	assert.Empty(t, fb.lastDir())
	assert.Equal(t, "err", rc.InfoMap(ctx, "persistence").Val()["Persistence"]["rdb_last_bgsave_status"])

	require.ErrorIs(t, rc.Do(ctx, "SHUTDOWN", "SAVE", "FORCE").Err(), io.EOF, "FORCE stops all the same: no reply")
	assert.Equal(t, int64(1), sd.n.Load())
	assert.Empty(t, fb.lastDir())

	fb.fail.Store(false)
	require.NoError(t, ds.client(t).ShutdownSave(ctx).Err())
	assert.Equal(t, int64(2), sd.n.Load())
	dir := fb.lastDir()
	require.NotEmpty(t, dir, "the checkpoint is written before the stop")
	cp, err := store.Open(dir, store.Options{})
	require.NoError(t, err)
	defer cp.Close()
	pairs, found, err := cp.Load("h")
	require.NoError(t, err)
	require.True(t, found)
	assert.Equal(t, map[string][]byte{"f": []byte("v")}, pairs)

	// In memory, FORCE stops without the checkpoint it cannot write.
	mts, mem := startCountingShutdowns(t)
	require.ErrorIs(t, mts.client(t).Do(ctx, "SHUTDOWN", "SAVE", "FORCE").Err(), io.EOF)
	assert.Equal(t, int64(1), mem.n.Load())
}

// redis-cli shutdown exits 0 and prints nothing, as against Redis.
func TestRedisCLIShutdown(t *testing.T) {
	cli := redisTool(t, "redis-cli")
	ts, sd := startCountingShutdowns(t)
	host, port, err := net.SplitHostPort(ts.addr)
	require.NoError(t, err)
	out, err := exec.Command(cli, "-h", host, "-p", port, "shutdown", "nosave").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Empty(t, string(out))
	assert.Equal(t, int64(1), sd.n.Load())
}
