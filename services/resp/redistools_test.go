package resp

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// redisTool returns the path of a Redis command-line tool, or skips the
// test when it is not installed; with KV_REQUIRE_REDIS_TOOLS=1 (as CI,
// which installs them, sets it) a missing tool fails the test instead.
func redisTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("KV_REQUIRE_REDIS_TOOLS") == "1" {
			t.Fatalf("%s is not installed (apt-get install redis-tools)", name)
		}
		t.Skipf("%s is not installed", name)
	}
	return path
}

// Redis's own clients, redis-cli and redis-benchmark, work against kv as
// the README says: commands and their replies, COMMAND DOCS, and a short
// benchmark, pipelined and not, whose writes are all there.
func TestRedisCLIAndBenchmark(t *testing.T) {
	cli, bench := redisTool(t, "redis-cli"), redisTool(t, "redis-benchmark")
	ts := start(t, Config{})
	host, port, err := net.SplitHostPort(ts.addr)
	require.NoError(t, err)
	run := func(tool string, args ...string) string {
		t.Helper()
		cmd := exec.Command(tool, append([]string{"-h", host, "-p", port}, args...)...)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s %v: %s", tool, args, out)
		return string(out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"PING"}, "PONG\n"},
		{[]string{"HSET", "shopping", "milk", "3", "eggs", "12"}, "2\n"},
		{[]string{"HINCRBY", "shopping", "eggs", "6"}, "18\n"},
		{[]string{"HMGET", "shopping", "milk", "eggs"}, "3\n18\n"},
		{[]string{"TYPE", "shopping"}, "hash\n"},
		{[]string{"HGET", "shopping", "bread"}, "\n"},
		{[]string{"GET", "shopping"}, "WRONGTYPE Operation against a key holding the wrong kind of value\n"},
		{[]string{"--no-raw", "HLEN", "shopping"}, "(integer) 2\n"},
	} {
		// Trimmed: redis-cli follows an error with an empty line.
		assert.Equal(t, strings.TrimSpace(tc.want), strings.TrimSpace(run(cli, tc.args...)), "%v", tc.args)
	}
	docs := run(cli, "COMMAND", "DOCS", "hset")
	for _, want := range []string{"arguments", "field_value", "multiple"} {
		assert.Contains(t, docs, want)
	}

	for _, pipeline := range []string{"1", "16"} {
		key := "bench-p" + pipeline
		out := run(bench, "-c", "5", "-n", "2000", "-r", "1000", "-P", pipeline, "-q", "HSET", key, "f:__rand_int__", "v")
		assert.Contains(t, out, "requests per second", "-P %s", pipeline)
		n, err := ts.client(t).HLen(context.Background(), key).Result()
		require.NoError(t, err)
		assert.Positive(t, n, "-P %s: the benchmark's writes are there", pipeline)
		assert.LessOrEqual(t, n, int64(1000))
	}
	assert.False(t, strings.Contains(run(cli, "INFO", "clients"), "connected_clients:0"), "redis-cli itself is connected")
}

// The README's WATCH session, in redis-cli: a key changed by another
// client between WATCH and EXEC makes EXEC answer (nil).
func TestRedisCLIWatch(t *testing.T) {
	cli := redisTool(t, "redis-cli")
	ts := start(t, Config{})
	host, port, err := net.SplitHostPort(ts.addr)
	require.NoError(t, err)
	ctx := context.Background()
	other := ts.client(t)
	require.NoError(t, other.HSet(ctx, "stock", "apples", "3").Err())

	cmd := exec.Command(cli, "-h", host, "-p", port, "--no-raw")
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	out := bufio.NewReader(stdout)
	line := func() string {
		t.Helper()
		l, err := out.ReadString('\n')
		require.NoError(t, err)
		return strings.TrimSpace(l)
	}
	_, err = io.WriteString(stdin, "WATCH stock\nHGET stock apples\n")
	require.NoError(t, err)
	assert.Equal(t, "OK", line())
	assert.Equal(t, `"3"`, line())
	require.NoError(t, other.HIncrBy(ctx, "stock", "apples", -2).Err())
	_, err = io.WriteString(stdin, "MULTI\nHSET stock apples 2\nEXEC\n")
	require.NoError(t, err)
	require.NoError(t, stdin.Close())
	assert.Equal(t, "OK", line())
	assert.Equal(t, "QUEUED", line())
	assert.Equal(t, "(nil)", line())
	require.NoError(t, cmd.Wait())
	assert.Equal(t, "1", other.HGet(ctx, "stock", "apples").Val(), "the other client's write stands")
}

// redis-cli MONITOR streams the commands other clients run, as against
// Redis.
func TestRedisCLIMonitor(t *testing.T) {
	cli := redisTool(t, "redis-cli")
	ts := start(t, Config{})
	host, port, err := net.SplitHostPort(ts.addr)
	require.NoError(t, err)
	cmd := exec.Command(cli, "-h", host, "-p", port, "MONITOR")
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	// Should the line never come, the scan below ends with redis-cli.
	stop := time.AfterFunc(30*time.Second, func() { _ = cmd.Process.Kill() })
	defer stop.Stop()
	lines := bufio.NewScanner(out)
	require.True(t, lines.Scan())
	require.Equal(t, "OK", lines.Text())
	require.NoError(t, ts.client(t).HSet(context.Background(), "cart", "milk", "3").Err())
	for lines.Scan() {
		if strings.HasSuffix(lines.Text(), `] "hset" "cart" "milk" "3"`) {
			assert.Regexp(t, `^\d+\.\d{6} \[0 127\.0\.0\.1:\d+\] "hset"`, lines.Text())
			return
		}
	}
	t.Fatalf("redis-cli MONITOR ended without the HSET: %v", lines.Err())
}
