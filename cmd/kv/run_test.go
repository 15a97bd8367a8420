package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kvproject/kv/services/resp"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if kvBinary.dir != "" {
		os.RemoveAll(kvBinary.dir)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// kvBinary is the daemon, built once for every test that runs it as a
// separate process.
var kvBinary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// buildKV returns the path of the kv binary, building it on first use; in
// -short mode it skips the test instead.
func buildKV(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	kvBinary.once.Do(func() {
		if kvBinary.dir, kvBinary.err = os.MkdirTemp("", "kv-test-"); kvBinary.err != nil {
			return
		}
		kvBinary.path = filepath.Join(kvBinary.dir, "kv")
		build := exec.Command("go", "build", "-o", kvBinary.path, ".")
		build.Stderr = os.Stderr
		kvBinary.err = build.Run()
	})
	require.NoError(t, kvBinary.err, "building kv")
	return kvBinary.path
}

func TestHelpListsEveryFlagWithItsVariable(t *testing.T) {
	var out, errOut bytes.Buffer
	require.Equal(t, exitOK, run([]string{"--help"}, nil, &out, &errOut, nil))
	for _, want := range []string{
		"--resp-addr", "KV_RESP_ADDR", `default "127.0.0.1:6380"`, "--log-format", "KV_LOG_FORMAT",
		"--log-level", "--in-memory", "--password-file", "KV_PASSWORD", "--max-clients", "KV_MAX_CLIENTS",
		"--max-request-bytes", "--max-bulk-len", "--max-args", "--idle-timeout", "--shutdown-timeout",
		"--enable-debug-command", "--version", "--text-addr", "KV_TEXT_ADDR", "--http-addr", "KV_HTTP_ADDR",
		"--text-max-line-bytes", "--http-max-body-bytes", "--text-max-clients", "KV_HTTP_MAX_CONNS", "--data-dir", "KV_DATA_DIR", `default "./kv-data"`,
		"--fsync", `default "everysec"`, "kv check DIR", "--resp-goroutine-per-client", "KV_RESP_GOROUTINE_PER_CLIENT",
		"--slowlog-slower-than", "KV_SLOWLOG_SLOWER_THAN", `default "10ms"`, "--slowlog-max-len", "KV_SLOWLOG_MAX_LEN",
	} {
		assert.Contains(t, out.String(), want)
	}
	// The counting flags, which parse with kv's own type for its errors,
	// keep the flag package's name for their value.
	for _, want := range []string{"--max-clients int\n", "--max-args int\n", "--slowlog-max-len int\n", "--http-max-conns int\n"} {
		assert.Contains(t, out.String(), want)
	}
	assert.Empty(t, errOut.String(), "help goes to stdout, and only there")
	out.Reset()
	require.Equal(t, exitOK, run([]string{"--version"}, nil, &out, &errOut, nil))
	assert.Contains(t, out.String(), "kv "+version)
}

func TestParsePrecedence(t *testing.T) {
	var out, errOut bytes.Buffer
	o, _, done := parse(nil, nil, &out, &errOut)
	require.False(t, done)
	assert.Equal(t, "127.0.0.1:6380", o.respAddr)
	assert.Equal(t, 5*time.Minute, o.idleTimeout)

	env := []string{"KV_RESP_ADDR=127.0.0.1:7000", "KV_MAX_CLIENTS=7", "KV_LOG_FORMAT=json"}
	o, _, done = parse(nil, env, &out, &errOut)
	require.False(t, done)
	assert.Equal(t, "127.0.0.1:7000", o.respAddr)
	assert.Equal(t, 7, o.maxClients)
	assert.Equal(t, "json", o.logFormat)

	o, _, done = parse([]string{"--resp-addr", "127.0.0.1:7001"}, env, &out, &errOut)
	require.False(t, done)
	assert.Equal(t, "127.0.0.1:7001", o.respAddr, "a flag wins over its variable")
	assert.Equal(t, 7, o.maxClients)

	// The password has one source: a flag wins over the other's variable.
	o, _, done = parse([]string{"--password", "flag"}, []string{"KV_PASSWORD_FILE=/env/file"}, &out, &errOut)
	require.False(t, done)
	assert.Equal(t, "flag", o.password)
	assert.Empty(t, o.passwordFile)
	o, _, done = parse([]string{"--password-file", "/flag/file"}, []string{"KV_PASSWORD=env"}, &out, &errOut)
	require.False(t, done)
	assert.Empty(t, o.password)
	assert.Equal(t, "/flag/file", o.passwordFile)
	for _, tc := range []struct{ args, env []string }{
		{[]string{"--password", "a", "--password-file", "/f"}, nil},
		{nil, []string{"KV_PASSWORD=a", "KV_PASSWORD_FILE=/f"}},
	} {
		errOut.Reset()
		_, code, done := parse(tc.args, tc.env, &out, &errOut)
		require.True(t, done)
		assert.Equal(t, exitUsage, code)
		assert.Contains(t, errOut.String(), "give the password once")
	}

	// --in-memory with a data directory or a policy says they are ignored
	// (run logs it: see TestStartupWarningIsALogRecord).
	for _, tc := range []struct{ args, env []string }{
		{[]string{"--in-memory", "--data-dir", "/d"}, nil},
		{[]string{"--in-memory"}, []string{"KV_FSYNC=always"}},
		{nil, []string{"KV_IN_MEMORY=1", "KV_DATA_DIR=/d"}},
		{[]string{"--in-memory", "--keep-checkpoints", "3"}, nil},
	} {
		errOut.Reset()
		o, _, done := parse(tc.args, tc.env, &out, &errOut)
		require.False(t, done)
		require.Len(t, o.warnings, 1)
		assert.Contains(t, o.warnings[0], "--data-dir, --fsync, --keep-checkpoints and --unload-idle are ignored")
		assert.Empty(t, errOut.String())
	}
	o, _, _ = parse([]string{"--in-memory"}, nil, &out, &errOut)
	assert.Empty(t, o.warnings)
	// A boolean variable's error says what it takes.
	_, code, _ := parse(nil, []string{"KV_IN_MEMORY=yes"}, &out, &errOut)
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut.String(), "use true or false")
}

// TestBytesFlagsReadNumbersAsIntegerFlagsDo: the flags that count bytes
// take what the flag package's integer flags take (with a base prefix or
// underscores), as a flag or a variable, into int and int64 alike.
func TestBytesFlagsReadNumbersAsIntegerFlagsDo(t *testing.T) {
	var out, errOut bytes.Buffer
	o, _, done := parse([]string{"--max-request-bytes", "1048576", "--max-bulk-len", "0x100", "--http-max-body-bytes", "8_000_000_000"},
		[]string{"KV_MAX_REPLY_BYTES=0o1000", "KV_TEXT_MAX_LINE_BYTES=4096"}, &out, &errOut)
	require.False(t, done, errOut.String())
	assert.Equal(t, 1<<20, o.maxRequestBytes)
	assert.Equal(t, 256, o.maxBulkLen)
	assert.Equal(t, int64(8e9), o.maxBodyBytes)
	assert.Equal(t, 512, o.maxReplyBytes)
	assert.Equal(t, 4096, o.maxLineBytes)
}

func TestStartupErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	twoLines := filepath.Join(t.TempDir(), "pw")
	require.NoError(t, os.WriteFile(twoLines, []byte("secret\n# the old one: hunter2\n"), 0o600))
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		code int
		want string
	}{
		{"unknown flag", []string{"--nope"}, nil, exitUsage, "not defined"},
		{"unknown flag's hint", []string{"--nope"}, nil, exitUsage, "Run kv --help for the flags."},
		{"stray argument", []string{"serve"}, nil, exitUsage, "unexpected argument"},
		{"bad variable", nil, []string{"KV_IDLE_TIMEOUT=soon"}, exitUsage, "KV_IDLE_TIMEOUT"},
		// A duration without its unit (Redis's timeout is in seconds) is
		// told what it lacks, not "parse error", as a flag or a variable.
		{"duration without its unit", []string{"--idle-timeout", "300"}, nil, exitUsage,
			`invalid value "300" for flag -idle-timeout: not a duration: give a number with its unit, such as 300s`},
		{"variable's duration without its unit", nil, []string{"KV_SHUTDOWN_TIMEOUT=15"}, exitUsage,
			`KV_SHUTDOWN_TIMEOUT="15": not a duration: give a number with its unit`},
		{"slow log's duration without its unit", []string{"--slowlog-slower-than", "10000"}, nil, exitUsage, "not a duration"},
		// A number of bytes with a unit (64MiB, or Redis's 64mb) is told
		// that kv takes a plain number, as a flag or a variable; one too
		// large for the flag is out of range.
		{"bytes with a unit", []string{"--max-request-bytes", "64MiB"}, nil, exitUsage,
			`invalid value "64MiB" for flag -max-request-bytes: not a number of bytes: give it without a unit, such as 67108864 for 64 MiB`},
		{"variable's bytes with a unit", nil, []string{"KV_HTTP_MAX_BODY_BYTES=1mb"}, exitUsage,
			`KV_HTTP_MAX_BODY_BYTES="1mb": not a number of bytes: give it without a unit`},
		{"bytes out of range", []string{"--max-bulk-len", "99999999999999999999"}, nil, exitUsage,
			`invalid value "99999999999999999999" for flag -max-bulk-len: value out of range`},
		// A count with a unit or in another notation (10k, 1e6) is told
		// that kv takes digits, as a flag or a variable; one too large for
		// the flag is out of range.
		{"count with a unit", []string{"--max-clients", "10k"}, nil, exitUsage,
			`invalid value "10k" for flag -max-clients: not a whole number: give digits only, such as 10000`},
		{"variable's count in another notation", nil, []string{"KV_MAX_ARGS=1e6"}, exitUsage,
			`KV_MAX_ARGS="1e6": not a whole number: give digits only`},
		{"count out of range", []string{"--slowlog-max-len", "99999999999999999999"}, nil, exitUsage,
			`invalid value "99999999999999999999" for flag -slowlog-max-len: value out of range`},
		{"bad log format", []string{"--log-format", "xml"}, nil, exitUsage, "text or json"},
		{"bad level", []string{"--log-level", "loud"}, nil, exitUsage, "--log-level"},
		{"bad fsync", []string{"--fsync", "sometimes"}, nil, exitUsage, "--fsync must be always, everysec or no"},
		{"check without a directory", []string{"check"}, nil, exitUsage, "Usage: kv check DIR"},
		{"check with a flag", []string{"check", "--bogus"}, nil, exitUsage, "kv check: unknown flag --bogus"},
		{"public without password", []string{"--resp-addr", "0.0.0.0:0"}, nil, exitRefused, "refusing to listen on 0.0.0.0:0 (--resp-addr) without a password"},
		{"public without password, JSON logs", []string{"--log-format", "json", "--resp-addr", "0.0.0.0:0"}, nil, exitRefused,
			`"level":"ERROR","msg":"refusing to listen on 0.0.0.0:0 (--resp-addr) without a password`},
		{"public line protocol without password", []string{"--resp-addr", "127.0.0.1:0", "--text-addr", "0.0.0.0:0"}, nil, exitRefused, "(--text-addr) without a password"},
		{"public HTTP without password", []string{"--resp-addr", "127.0.0.1:0", "--http-addr", ":0"}, nil, exitRefused, "(--http-addr) without a password"},
		{"HTTP port in use", []string{"--resp-addr", "127.0.0.1:0", "--http-addr", busy.Addr().String()}, nil, exitNoListen, "cannot listen for HTTP"},
		{"bad line limit", []string{"--text-max-line-bytes", "0"}, nil, exitUsage, "limits must be positive"},
		{"bad line client cap", []string{"--text-max-clients", "0"}, nil, exitUsage, "limits must be positive"},
		{"bad HTTP connection cap", []string{"--http-max-conns", "-1"}, nil, exitUsage, "limits must be positive"},
		{"all interfaces without password", []string{"--resp-addr", ":0"}, nil, exitRefused, "refusing"},
		{"missing password file", []string{"--password-file", "/nonexistent/pw"}, nil, exitRefused, "password file"},
		// On a busy port: a daemon that took the file would fail to listen, not run on.
		{"password file of two lines", []string{"--password-file", twoLines, "--in-memory", "--resp-addr", busy.Addr().String()}, nil, exitRefused, "has more than one line"},
		{"password the line protocol cannot carry", []string{"--resp-addr", "127.0.0.1:0", "--text-addr", "127.0.0.1:0", "--password", "two words"}, nil, exitRefused, "cannot serve --text-addr 127.0.0.1:0"},
		{"password HTTP cannot carry", []string{"--resp-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--password", "abc "}, nil, exitRefused, "cannot serve --http-addr 127.0.0.1:0"},
		{"port in use", []string{"--resp-addr", busy.Addr().String()}, nil, exitNoListen, "cannot listen"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			assert.Equal(t, tc.code, run(tc.args, tc.env, &out, &errOut, nil))
			assert.Contains(t, errOut.String(), tc.want)
		})
	}
}

// serveInProcess runs the daemon's serve in this process on a free port.
func serveInProcess(t *testing.T, args ...string) (addr string, stop func() int) {
	t.Helper()
	l, stop := serveAll(t, args...)
	return l.resp.String(), stop
}

// serveAll runs the daemon's serve in this process and returns where each
// front end listens.
func serveAll(t *testing.T, args ...string) (l listening, stop func() int) {
	t.Helper()
	var out, errOut bytes.Buffer
	o, _, done := parse(append([]string{"--resp-addr", "127.0.0.1:0", "--in-memory"}, args...), nil, &out, &errOut)
	require.False(t, done, errOut.String())
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan listening, 1)
	code := make(chan int, 1)
	go func() {
		code <- serve(ctx, o, slog.New(slog.DiscardHandler), io.Discard, func(l listening) { ready <- l })
	}()
	select {
	case l = <-ready:
	case c := <-code:
		t.Fatalf("serve exited with %d", c)
	}
	return l, func() int { cancel(); return <-code }
}

func TestDaemonInProcess(t *testing.T) {
	pwFile := filepath.Join(t.TempDir(), "pw")
	require.NoError(t, os.WriteFile(pwFile, []byte("hunter2\n"), 0o600))
	addr, stop := serveInProcess(t, "--password-file", pwFile, "--enable-debug-command")
	ctx := context.Background()
	rc := redis.NewClient(&redis.Options{Addr: addr, Password: "hunter2"})
	require.NoError(t, rc.HSet(ctx, "cart", "apples", "3").Err())
	assert.Equal(t, "3", rc.HGet(ctx, "cart", "apples").Val())
	require.NoError(t, rc.Do(ctx, "DEBUG", "CRASH-BUCKET", "cart").Err())
	assert.Equal(t, int64(0), rc.Exists(ctx, "cart").Val())
	anon := redis.NewClient(&redis.Options{Addr: addr})
	assert.EqualError(t, anon.Ping(ctx).Err(), "NOAUTH Authentication required.")
	require.NoError(t, anon.Close())
	require.NoError(t, rc.Close())
	assert.Equal(t, exitOK, stop())
}

// TestDaemonBinary builds kv, runs it, drives it with go-redis (events of
// a crashed bucket included) and stops it with SIGTERM.
func TestDaemonBinary(t *testing.T) {
	bin := buildKV(t)

	cmd := exec.Command(bin, append(binaryArgs(), "--in-memory")...)
	cmd.Env = append(os.Environ(), "KV_ENABLE_DEBUG_COMMAND=true")
	addr, cmd, exited := startCommand(t, cmd)

	ctx := context.Background()
	rc := redis.NewClient(&redis.Options{Addr: addr})
	defer rc.Close()
	ps := rc.PSubscribe(ctx, "kv:*ed")
	defer ps.Close()
	_, err := ps.ReceiveTimeout(ctx, 10*time.Second)
	require.NoError(t, err)
	require.NoError(t, rc.HSet(ctx, "a", "f", "1").Err())
	require.NoError(t, rc.HSet(ctx, "b", "f", "2").Err())
	require.NoError(t, rc.Do(ctx, "DEBUG", "CRASH-BUCKET", "a").Err())
	var got []resp.EventMessage
	for len(got) < 3 {
		got = append(got, nextEvent(t, ps))
	}
	assert.Equal(t, []string{"created a", "created b", "exited a"},
		[]string{got[0].Event + " " + got[0].Bucket, got[1].Event + " " + got[1].Bucket, got[2].Event + " " + got[2].Bucket})
	assert.Equal(t, resp.ReasonPanic, got[2].Reason)
	assert.Equal(t, int64(0), rc.Exists(ctx, "a").Val())
	assert.Equal(t, "2", rc.HGet(ctx, "b", "f").Val())
	info := rc.Info(ctx, "server").Val()
	assert.Regexp(t, regexp.MustCompile(`kv_version:`+regexp.QuoteMeta(version)), info)

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	requireCleanExit(t, cmd, exited, "SIGTERM")
	assert.True(t, strings.HasPrefix(addr, "127.0.0.1:"))
}

// nextEvent returns the next lifecycle event message on ps, failing the
// test if anything else comes, or nothing within 10 s.
func nextEvent(t *testing.T, ps *redis.PubSub) resp.EventMessage {
	t.Helper()
	msg, err := ps.ReceiveTimeout(context.Background(), 10*time.Second)
	require.NoError(t, err)
	m, ok := msg.(*redis.Message)
	require.True(t, ok, "%T", msg)
	var ev resp.EventMessage
	require.NoError(t, json.Unmarshal([]byte(m.Payload), &ev))
	return ev
}

// TestSecondSignalExitsAtOnce stops kv while a client that does not read
// holds up the clean stop, then signals again: kv exits at once, with 1.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	bin := buildKV(t)

	cmd := exec.Command(bin, "--resp-addr", "127.0.0.1:0", "--log-format", "json", "--shutdown-timeout", "60s", "--in-memory")
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	defer func() { _ = cmd.Process.Kill() }()
	logs := bufio.NewScanner(stderr)
	var seen []string
	waitLog := func(msg string) map[string]any {
		for logs.Scan() {
			seen = append(seen, logs.Text())
			var line map[string]any
			require.NoError(t, json.Unmarshal(logs.Bytes(), &line), logs.Text())
			if line["msg"] == msg {
				return line
			}
		}
		t.Fatalf("no log %q in:\n%s", msg, strings.Join(seen, "\n"))
		return nil
	}
	addr := waitLog("kv started")["resp"].(string)

	ctx := context.Background()
	rc := redis.NewClient(&redis.Options{Addr: addr})
	defer rc.Close()
	require.NoError(t, rc.HSet(ctx, "big", "v", strings.Repeat("x", 1<<20)).Err())
	// A client that asks for 200 MiB of replies and reads none: its
	// connection blocks in a write, and the clean stop waits for it.
	hog, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer hog.Close()
	_, err = hog.Write([]byte(strings.Repeat("HGET big v\r\n", 200)))
	require.NoError(t, err)
	_, err = io.ReadFull(hog, make([]byte, 1000)) // the server is answering it
	require.NoError(t, err)

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	first := waitLog("signal received: stopping cleanly (a second signal exits at once)")
	// A signal within repeatedSignal of the first is the same stop (GNU
	// timeout signals kv and then its process group); each is answered
	// by a log line before the next is sent, until one comes late enough
	// to be a second signal. Before, the first of them exited at once.
	for second := false; !second; {
		require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
		for logs.Scan() {
			seen = append(seen, logs.Text())
			var line map[string]any
			require.NoError(t, json.Unmarshal(logs.Bytes(), &line), logs.Text())
			if line["msg"] == "signal repeated at once: the same stop" {
				break
			}
			if line["msg"] == "second signal: exiting at once" {
				t0, err := time.Parse(time.RFC3339Nano, first["time"].(string))
				require.NoError(t, err)
				t1, err := time.Parse(time.RFC3339Nano, line["time"].(string))
				require.NoError(t, err)
				assert.GreaterOrEqual(t, t1.Sub(t0), repeatedSignal-10*time.Millisecond,
					"a signal soon after the first exited at once")
				second = true
				break
			}
		}
		require.NoError(t, logs.Err())
	}
	err = cmd.Wait()
	var exitErr *exec.ExitError
	require.ErrorAs(t, err, &exitErr)
	assert.Equal(t, exitFailed, exitErr.ExitCode())
}

// GNU timeout delivers its signal twice, to kv and then to the process
// group it made for it, within microseconds (here the kernel most often
// merges them into one): one stop, which kv makes cleanly (exit 0).
// Before, when both arrived, the second was taken for a second signal
// and kv exited 1 at once, skipping the clean stop (see
// TestSecondSignalExitsAtOnce, which sends them one by one).
func TestSignalFromTimeoutIsOneCleanStop(t *testing.T) {
	bin := buildKV(t)
	timeout, err := exec.LookPath("timeout")
	require.NoError(t, err, "GNU coreutils' timeout")
	var stderr bytes.Buffer
	cmd := exec.Command(timeout, "--preserve-status", "1", bin, "--resp-addr", "127.0.0.1:0", "--log-format", "json", "--in-memory")
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Run(), stderr.String())
	assert.Contains(t, stderr.String(), "kv stopped")
	assert.NotContains(t, stderr.String(), "second signal: exiting at once")
}

// TestStopLetsInFlightCommandsSeeTheirBuckets stops the daemon while a
// pipeline is in flight: every reply that arrives is the stored value,
// never the nil of a bucket already stopped by the tree.
func TestStopLetsInFlightCommandsSeeTheirBuckets(t *testing.T) {
	addr, stop := serveInProcess(t)
	ctx := context.Background()
	rc := redis.NewClient(&redis.Options{Addr: addr})
	require.NoError(t, rc.HSet(ctx, "b", "f", strings.Repeat("v", 4096)).Err())
	require.NoError(t, rc.Close())

	nc, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer nc.Close()
	go func() { _, _ = nc.Write([]byte(strings.Repeat("HGET b f\r\n", 20000))) }()
	rd := bufio.NewReader(nc)
	first, err := rd.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "$4096\r\n", first)
	code := make(chan int, 1)
	go func() { code <- stop() }()
	want := strings.Repeat("v", 4096) + "\r\n$4096\r\n"
	buf := make([]byte, len(want))
	replies := 0
	for {
		if _, err := io.ReadFull(rd, buf); err != nil {
			break
		}
		require.Equal(t, want, string(buf), "reply %d", replies)
		replies++
	}
	assert.Equal(t, exitOK, <-code)
	t.Logf("%d replies after the stop began", replies)
}

// TestThreeFrontEndsOneTree runs the daemon with every front end and shows
// they share one tree and one set of metrics.
func TestThreeFrontEndsOneTree(t *testing.T) {
	l, stop := serveAll(t, "--text-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0")
	ctx := context.Background()
	rc := redis.NewClient(&redis.Options{Addr: l.resp.String()})
	defer rc.Close()
	require.NoError(t, rc.HSet(ctx, "shopping", "eggs", "3").Err())

	// The guide's line protocol sees what the Redis client wrote.
	nc, err := net.Dial("tcp", l.text.String())
	require.NoError(t, err)
	defer nc.Close()
	_, err = nc.Write([]byte("GET shopping eggs\r\nPUT shopping milk 1\r\n"))
	require.NoError(t, err)
	rd := bufio.NewReader(nc)
	for _, want := range []string{"3\r\n", "OK\r\n", "OK\r\n"} {
		line, err := rd.ReadString('\n')
		require.NoError(t, err)
		assert.Equal(t, want, line)
	}
	assert.Equal(t, "1", rc.HGet(ctx, "shopping", "milk").Val())

	base := "http://" + l.http.String()
	get := func(path string) (int, string) {
		res, err := http.Get(base + path)
		require.NoError(t, err)
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		return res.StatusCode, string(body)
	}
	code, body := get("/v1/buckets/shopping/keys/milk")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "1", body)
	code, _ = get("/readyz")
	assert.Equal(t, http.StatusOK, code)
	code, body = get("/metrics")
	assert.Equal(t, http.StatusOK, code)
	for _, want := range []string{
		`kv_commands_total{command="hset",protocol="resp",result="ok"} 1`,
		`kv_commands_total{command="get",protocol="text",result="ok"} 1`,
		`kv_commands_total{command="get_key",protocol="http",result="ok"} 1`,
		`kv_buckets 1`,
	} {
		assert.Contains(t, body, want)
	}
	assert.Equal(t, exitOK, stop())
}

// --text-max-clients and --http-max-conns reach the front ends: a line
// client past the cap gets ERROR and is closed, an HTTP connection past it
// waits until one closes.
func TestFrontEndConnectionCaps(t *testing.T) {
	l, stop := serveAll(t, "--text-addr", "127.0.0.1:0", "--text-max-clients", "1",
		"--http-addr", "127.0.0.1:0", "--http-max-conns", "1")

	lineClient := func() (net.Conn, *bufio.Reader) {
		nc, err := net.Dial("tcp", l.text.String())
		require.NoError(t, err)
		return nc, bufio.NewReader(nc)
	}
	first, rd := lineClient()
	_, err := first.Write([]byte("CREATE shopping\r\n"))
	require.NoError(t, err)
	line, err := rd.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "OK\r\n", line)
	second, rd2 := lineClient()
	require.NoError(t, second.SetReadDeadline(time.Now().Add(10*time.Second)))
	line, err = rd2.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "ERROR\r\n", line)
	_, err = rd2.ReadString('\n')
	assert.ErrorIs(t, err, io.EOF, "the client past the cap is closed")
	require.NoError(t, second.Close())
	require.NoError(t, first.Close())
	require.Eventually(t, func() bool {
		nc, rd := lineClient()
		defer nc.Close()
		if _, err := nc.Write([]byte("CREATE shopping\r\n")); err != nil {
			return false
		}
		line, err := rd.ReadString('\n')
		return err == nil && line == "OK\r\n"
	}, 20*time.Second, 10*time.Millisecond, "a slot frees once the first client leaves")

	// One HTTP connection kept alive holds the only slot.
	held, err := net.Dial("tcp", l.http.String())
	require.NoError(t, err)
	_, err = held.Write([]byte("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
	require.NoError(t, err)
	res, err := http.ReadResponse(bufio.NewReader(held), nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.NoError(t, res.Body.Close())
	waiting := &http.Client{Timeout: 300 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	_, err = waiting.Get("http://" + l.http.String() + "/healthz")
	require.Error(t, err, "a second connection is not served while the first holds the only slot")
	require.NoError(t, held.Close())
	// Each try may wait for the slot, and for a daemon slowed by -race on
	// a loaded machine: not the 300 ms above, which a slow answer passes.
	patient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	require.Eventually(t, func() bool {
		res, err := patient.Get("http://" + l.http.String() + "/healthz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	}, 20*time.Second, 10*time.Millisecond, "a slot frees once the first connection closes")
	assert.Equal(t, exitOK, stop())
}

// Every part of the stop's budget is positive, and the front ends' parts
// fit in it: a tiny --shutdown-timeout must not turn into the services'
// defaults (5 s and more), which 0 would.
func TestStopBudgets(t *testing.T) {
	for _, total := range []time.Duration{time.Nanosecond, 2 * time.Nanosecond, time.Microsecond, 10 * time.Millisecond, time.Second, 15 * time.Second} {
		frontEnd, clients, core := stopBudgets(total)
		assert.Positive(t, frontEnd, total)
		assert.Positive(t, clients, total)
		assert.LessOrEqual(t, frontEnd, max(total, time.Nanosecond), total)
		assert.LessOrEqual(t, clients, frontEnd, total)
		assert.GreaterOrEqual(t, core, 250*time.Millisecond, total)
	}
	frontEnd, clients, core := stopBudgets(15 * time.Second)
	assert.Equal(t, []time.Duration{7500 * time.Millisecond, 6 * time.Second, 3250 * time.Millisecond}, []time.Duration{frontEnd, clients, core})
}

// Closing the data directory is bounded: a close that never returns (a
// store stuck on a failing disk) gives an error after the bound, and one
// that returns gives its own answer.
func TestCloseWithin(t *testing.T) {
	stuck := make(chan struct{})
	defer close(stuck)
	err := closeWithin(func() error { <-stuck; return nil }, 20*time.Millisecond)
	require.ErrorContains(t, err, "did not close within")
	failed := errors.New("failed")
	assert.ErrorIs(t, closeWithin(func() error { return failed }, time.Minute), failed)
	assert.NoError(t, closeWithin(func() error { return nil }, time.Minute))
}

func TestDurableProcs(t *testing.T) {
	type test struct {
		name    string
		durable bool
		env     []string
		procs   int
		want    int
	}
	tests := []test{
		{"durable on one core", true, []string{"HOME=/root"}, 1, 2},
		{"durable on two cores", true, nil, 2, 0},
		{"durable on many cores", true, nil, 64, 0},
		{"in memory on one core", false, nil, 1, 0},
		{"the user's GOMAXPROCS stands", true, []string{"GOMAXPROCS=1"}, 1, 0},
		{"the first GOMAXPROCS counts, as for the runtime", true, []string{"GOMAXPROCS=1", "GOMAXPROCS=x"}, 1, 0},
		{"a variable that only starts like it", true, []string{"GOMAXPROCSX=1"}, 1, 2},
	}
	// Values the runtime ignores (it keeps its own choice) are no choice.
	for _, v := range []string{"", "0", "-1", "abc", " 2", "99999999999"} {
		tests = append(tests, test{"ignored GOMAXPROCS=" + v, true, []string{"GOMAXPROCS=" + v}, 1, 2})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, durableProcs(tt.durable, tt.env, tt.procs))
		})
	}
}

// run raises GOMAXPROCS through setProcs, before it opens anything, only
// for the durable store; it leaves the test binary's own alone.
func TestRunRaisesProcsThroughSetProcs(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	tests := []struct {
		name string
		args []string
		want []int // the calls to setProcs
	}{
		{"durable", []string{"--data-dir", t.TempDir()}, []int{0, 2}},
		{"in memory", []string{"--in-memory"}, []int{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls []int
			setProcs := func(n int) int { calls = append(calls, n); return 1 }
			var out, errOut bytes.Buffer
			args := append([]string{"--resp-addr", busy.Addr().String()}, tt.args...)
			assert.Equal(t, exitNoListen, run(args, nil, &out, &errOut, setProcs), errOut.String())
			assert.Equal(t, tt.want, calls)
		})
	}
}

// firstCPU returns the first CPU this process may run on.
func firstCPU(t *testing.T) string {
	t.Helper()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no CPU list: %v", err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if list, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			return strings.FieldsFunc(strings.TrimSpace(list), func(r rune) bool { return r == ',' || r == '-' })[0]
		}
	}
	t.Skip("no Cpus_allowed_list in /proc/self/status")
	return ""
}

// The daemon, run on one core (taskset), where Go chooses GOMAXPROCS=1:
// with the durable store it raises GOMAXPROCS to 2, unless the user set
// GOMAXPROCS; in memory it keeps Go's choice, and with one P serves a
// goroutine per client rather than the event loop. INFO reports both.
func TestDaemonDurableProcsOnOneCore(t *testing.T) {
	bin := buildKV(t)
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		t.Skip("needs taskset (util-linux)")
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOMAXPROCS=") {
			env = append(env, kv)
		}
	}
	cpu := firstCPU(t)
	tests := []struct {
		name string
		env  []string
		args []string
		want string
		mux  string // how the Redis protocol server waits for its clients
	}{
		{"durable", env, []string{"--data-dir", t.TempDir()}, "2", "epoll"},
		{"durable with the user's GOMAXPROCS", append(slices.Clone(env), "GOMAXPROCS=1"), []string{"--data-dir", t.TempDir()}, "1", "epoll"},
		{"durable with a GOMAXPROCS the runtime ignores", append(slices.Clone(env), "GOMAXPROCS="), []string{"--data-dir", t.TempDir()}, "2", "epoll"},
		{"in memory", env, []string{"--in-memory"}, "1", "goroutines"},
		{"in memory with two Ps", append(slices.Clone(env), "GOMAXPROCS=2"), []string{"--in-memory"}, "2", "epoll"},
		{"in memory, goroutines asked for", append(slices.Clone(env), "GOMAXPROCS=2"), []string{"--in-memory", "--resp-goroutine-per-client"}, "2", "goroutines"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(taskset, append(append([]string{"-c", cpu, bin}, binaryArgs()...), tt.args...)...)
			cmd.Env = tt.env
			addr, cmd, exited := startCommand(t, cmd)
			defer func() {
				require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
				<-exited
			}()
			c := redis.NewClient(&redis.Options{Addr: addr})
			defer c.Close()
			info, err := c.Info(context.Background(), "server").Result()
			require.NoError(t, err)
			assert.Contains(t, info, "go_maxprocs:"+tt.want+"\r\n")
			if runtime.GOOS == "linux" {
				assert.Contains(t, info, "multiplexing_api:"+tt.mux+"\r\n")
			}
		})
	}
}

// Where a listener is bound decides, not only the name it was given:
// localhost must have resolved to loopback.
func TestBoundToLoopback(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:0", true},
		{"localhost:0", true},
		{"0.0.0.0:0", false},
		{":0", false},
	} {
		ln, err := net.Listen("tcp", tc.addr)
		require.NoError(t, err)
		assert.Equal(t, tc.want, boundToLoopback(ln), "%s bound to %s", tc.addr, ln.Addr())
		ln.Close()
	}
}

// runBinaryToExit runs the built kv, which must exit on its own (a
// configuration it refuses): it returns the exit code and what kv wrote to
// stderr. A kv that starts serving instead is killed, and the test fails.
func runBinaryToExit(t *testing.T, env []string, args ...string) (code int, stderr string) {
	t.Helper()
	cmd := exec.Command(buildKV(t), args...)
	cmd.Env = append(os.Environ(), env...)
	pipe, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	var all strings.Builder
	started := ""
	logs := bufio.NewScanner(pipe)
	for logs.Scan() {
		all.WriteString(logs.Text() + "\n")
		if strings.Contains(logs.Text(), "kv started") {
			started = logs.Text()
			_ = cmd.Process.Kill()
		}
	}
	err = cmd.Wait()
	require.Empty(t, started, "kv started serving rather than refusing %q:\n%s", args, all.String())
	var exitErr *exec.ExitError
	if err != nil {
		require.ErrorAs(t, err, &exitErr)
		return exitErr.ExitCode(), all.String()
	}
	return exitOK, all.String()
}

// An address kv cannot listen on as written (no port, or no address at
// all for the Redis protocol, which cannot be turned off) is a usage
// error that names the flag: not a refusal to listen off loopback
// without a password ("127.0.0.1" is loopback), nor a listener on every
// interface at a random port (which Go makes of an empty address).
func TestMalformedAddressIsAUsageError(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"loopback without a port", nil, []string{"--resp-addr", "127.0.0.1"}, "--resp-addr"},
		{"a port alone", nil, []string{"--resp-addr", "6380"}, "--resp-addr"},
		{"line protocol without a port", nil, []string{"--resp-addr", "127.0.0.1:0", "--text-addr", "localhost"}, "--text-addr"},
		{"HTTP port out of range", nil, []string{"--resp-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:99999"}, "--http-addr"},
		// An empty port (KV_RESP_ADDR=127.0.0.1:$PORT with PORT unset) is
		// no port, not port 0: Go would pick a random one.
		{"empty port", nil, []string{"--resp-addr", "127.0.0.1:"}, "--resp-addr"},
		{"HTTP variable with an empty port", []string{"KV_HTTP_ADDR=127.0.0.1:"}, []string{"--resp-addr", "127.0.0.1:0"}, "KV_HTTP_ADDR"},
		{"with a password too", nil, []string{"--resp-addr", "127.0.0.1", "--password", "pw"}, "--resp-addr"},
		{"empty Redis address", nil, []string{"--resp-addr", "", "--password", "pw"}, "--resp-addr"},
		{"empty Redis variable", []string{"KV_RESP_ADDR=", "KV_PASSWORD=pw"}, nil, "KV_RESP_ADDR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stderr := runBinaryToExit(t, tc.env, append([]string{"--in-memory"}, tc.args...)...)
			assert.Equal(t, exitUsage, code, stderr)
			assert.Contains(t, stderr, tc.want)
			assert.NotContains(t, stderr, "refusing to listen", "a malformed address is not a non-loopback one")
			assert.NotContains(t, stderr, "is another program using it", "nothing was listened on")
		})
	}
}

// With --log-format json every line kv writes to stderr while it runs is
// a JSON record, its start-up warnings included (a log shipper reads each
// line as one), and --log-level applies to them.
func TestStartupWarningIsALogRecord(t *testing.T) {
	bin := buildKV(t)
	for _, tc := range []struct {
		level string
		warns bool
	}{{"info", true}, {"error", false}} {
		t.Run(tc.level, func(t *testing.T) {
			free, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			addr := free.Addr().String()
			require.NoError(t, free.Close())
			var stderr bytes.Buffer
			cmd := exec.Command(bin, "--resp-addr", addr, "--log-format", "json", "--log-level", tc.level, "--in-memory", "--data-dir", t.TempDir())
			cmd.Stderr = &stderr
			require.NoError(t, cmd.Start())
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			require.Eventually(t, func() bool {
				nc, err := net.Dial("tcp", addr)
				if err == nil {
					nc.Close()
				}
				return err == nil
			}, 30*time.Second, 10*time.Millisecond, "kv serves") // a start: a hang, not a speed
			require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
			require.NoError(t, <-exited)
			warned := false
			for _, text := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
				if text == "" {
					continue
				}
				var line map[string]any
				require.NoError(t, json.Unmarshal([]byte(text), &line), "not a JSON record: %s", text)
				if line["level"] == "WARN" && strings.Contains(fmt.Sprint(line["msg"]), "--data-dir, --fsync, --keep-checkpoints and --unload-idle are ignored") {
					warned = true
				}
			}
			assert.Equal(t, tc.warns, warned, stderr.String())
		})
	}
}

// A limit out of range says which one: among a dozen flags and variables,
// "limits must be positive" leaves the operator guessing.
func TestBadLimitNamesItsFlag(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		args []string
		want string
	}{
		{[]string{"KV_MAX_CLIENTS=0"}, nil, "--max-clients (KV_MAX_CLIENTS)"},
		{nil, []string{"--shutdown-timeout", "0s"}, "--shutdown-timeout (KV_SHUTDOWN_TIMEOUT)"},
		{[]string{"KV_IDLE_TIMEOUT=-1s"}, nil, "--idle-timeout (KV_IDLE_TIMEOUT)"},
		{nil, []string{"--http-max-body-bytes", "-5"}, "--http-max-body-bytes (KV_HTTP_MAX_BODY_BYTES)"},
		{[]string{"KV_SLOWLOG_MAX_LEN=-1"}, nil, "--slowlog-max-len (KV_SLOWLOG_MAX_LEN) is -1 (0 keeps none)"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			code, stderr := runBinaryToExit(t, tc.env, append([]string{"--in-memory", "--resp-addr", "127.0.0.1:0"}, tc.args...)...)
			assert.Equal(t, exitUsage, code, stderr)
			assert.Contains(t, stderr, tc.want)
		})
	}
}

// TestHangupIsIgnored: SIGHUP (the terminal that started kv closing) does
// not stop the daemon, as it does not stop Redis; a later SIGTERM still
// stops it cleanly, with 0.
func TestHangupIsIgnored(t *testing.T) {
	bin := buildKV(t)

	addr, cmd, exited := startBinary(t, bin, "--in-memory")
	defer func() { _ = cmd.Process.Kill() }()

	ctx := context.Background()
	rc := redis.NewClient(&redis.Options{Addr: addr})
	defer rc.Close()
	require.NoError(t, rc.HSet(ctx, "h", "f", "1").Err())
	require.NoError(t, cmd.Process.Signal(syscall.SIGHUP))
	// Had SIGHUP ended kv, the exit below would be by a signal, not 0,
	// whichever of the two signals the process took first.
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	requireCleanExit(t, cmd, exited, "SIGHUP then SIGTERM")
}

// A listen that fails on a name that does not resolve says so, rather
// than asking whether another program uses the port (operator review).
func TestListenHint(t *testing.T) {
	dns := &net.OpError{Op: "listen", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "kv.invalid", IsNotFound: true}}
	assert.Contains(t, listenHint(dns, "--resp-addr"), "host name")
	assert.NotContains(t, listenHint(dns, "--resp-addr"), "another program")
	busy := &net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", syscall.EADDRINUSE)}
	assert.Contains(t, listenHint(busy, "--resp-addr"), "another program")
	assert.Contains(t, listenHint(busy, "--resp-addr"), "--resp-addr")
}

// The clients' share of the stop is four fifths of the front ends' for
// every value --shutdown-timeout accepts (from review: frontEnd*4
// overflowed into the 1 ns floor past about 1,281,000h, and every client
// was cut at once at the stop).
func TestStopBudgetsLargeTimeout(t *testing.T) {
	for _, total := range []time.Duration{1300000 * time.Hour, 2562047 * time.Hour, math.MaxInt64} {
		frontEnd, clients, _ := stopBudgets(total)
		assert.Greater(t, clients, frontEnd/2, "total %v: clients got %v", total, clients)
		assert.LessOrEqual(t, clients, frontEnd, total)
	}
}

// A SIGTERM that arrives while kv is still starting (its context already
// ended when the listeners open) is a clean stop, not "cannot listen",
// also when an address is a name whose lookup the signal cancels (from
// review: exit 4).
func TestSignalDuringStartupIsACleanStop(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "localhost:0"} {
		var out, errOut bytes.Buffer
		o, _, done := parse([]string{"--resp-addr", addr, "--in-memory"}, nil, &out, &errOut)
		require.False(t, done)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		code := serve(ctx, o, slog.New(slog.DiscardHandler), &errOut, nil)
		assert.Equal(t, exitOK, code, "%s: %s", addr, errOut.String())
	}
}

// TestOpenFileLimitLowersTheCaps runs the durable kv under an open-file
// limit below its caps (10000 clients, pebble's 1000 files): kv lowers
// --max-clients to what fits, as Redis lowers maxclients, so that the
// client past it is told so, and the store keeps files to write a
// checkpoint with. Without it, clients took every descriptor: the next
// one hung, never accepted, and SAVE's client was disconnected without a
// reply.
func TestOpenFileLimitLowersTheCaps(t *testing.T) {
	bin := buildKV(t)
	const limit = 256
	cmd := exec.Command("sh", append([]string{"-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, limit), bin},
		append(binaryArgs(), "--data-dir", t.TempDir())...)...)
	addr, cmd, exited := startCommand(t, cmd)
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
	}()

	ask := func(c net.Conn, req string) (string, error) {
		if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
			return "", err
		}
		if _, err := io.WriteString(c, req); err != nil {
			return "", err
		}
		return bufio.NewReader(c).ReadString('\n')
	}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	var last string
	for len(conns) <= limit {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		conns = append(conns, c)
		if last, err = ask(c, "PING\r\n"); err != nil || last != "+PONG\r\n" {
			break
		}
	}
	assert.Equal(t, "-ERR max number of clients reached\r\n", last, "client %d", len(conns))
	assert.Equal(t, limit-minStoreFiles-reservedFiles+1, len(conns), "the caps take what the store and kv keep")
	reply, err := ask(conns[0], "SAVE\r\n")
	require.NoError(t, err, "SAVE's client is served")
	assert.Equal(t, "+OK\r\n", reply)
	// Nor may CONFIG SET raise the cap past what the limit leaves.
	ceiling := limit - minStoreFiles - reservedFiles
	reply, err = ask(conns[0], fmt.Sprintf("CONFIG SET maxclients %d\r\n", ceiling+1))
	require.NoError(t, err)
	assert.Equal(t, fmt.Sprintf("-ERR CONFIG SET failed (possibly related to argument 'maxclients') - "+
		"The operating system is not able to handle the specified number of clients, try with %d\r\n", ceiling), reply)
	reply, err = ask(conns[0], fmt.Sprintf("CONFIG SET maxclients %d\r\n", ceiling))
	require.NoError(t, err)
	assert.Equal(t, "+OK\r\n", reply)
}

func TestFitOpenFiles(t *testing.T) {
	var out, errOut bytes.Buffer
	o, _, _ := parse([]string{"--text-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"}, nil, &out, &errOut)
	fits := o
	storeMax, warnings, err := fitOpenFiles(&fits, 1<<20)
	require.NoError(t, err)
	assert.Equal(t, storeFiles, storeMax)
	assert.Empty(t, warnings)
	assert.Equal(t, 1<<20-storeFiles-reservedFiles-o.textMaxClients-o.httpMaxConns, fits.maxClientsCeiling,
		"CONFIG SET maxclients may take what the other caps leave")
	fits.maxClientsCeiling = 0
	assert.Equal(t, o, fits, "a limit that holds the caps changes none")
	unknown := o
	_, warnings, err = fitOpenFiles(&unknown, 0)
	require.NoError(t, err)
	assert.Empty(t, warnings)
	assert.Zero(t, unknown.maxClientsCeiling, "no limit known: no ceiling")

	short := o
	storeMax, warnings, err = fitOpenFiles(&short, 4096)
	require.NoError(t, err)
	assert.Equal(t, storeFiles, storeMax)
	assert.Len(t, warnings, 3)
	assert.Contains(t, warnings[0], "lowered --max-clients from 10000 to ")
	assert.Contains(t, warnings[0], "files for itself and its store;")
	assert.LessOrEqual(t, short.maxClients+short.textMaxClients+short.httpMaxConns+storeMax+reservedFiles, 4096)
	assert.Equal(t, 4096-storeMax-reservedFiles-short.textMaxClients-short.httpMaxConns, short.maxClientsCeiling)
	assert.GreaterOrEqual(t, short.maxClientsCeiling, short.maxClients)

	_, _, err = fitOpenFiles(&short, 64)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "the open-file limit (ulimit -n) of 64 is too low")
	mem := o
	mem.inMemory = true
	storeMax, _, err = fitOpenFiles(&mem, 64)
	require.NoError(t, err, "in memory, there is no store to keep files for")
	assert.Zero(t, storeMax)
	mem = o
	mem.inMemory = true
	_, warnings, err = fitOpenFiles(&mem, 1024)
	require.NoError(t, err)
	require.NotEmpty(t, warnings)
	assert.Contains(t, warnings[0], "kv keeps 32 files for itself;", "in memory, no store is named")
	_, _, err = fitOpenFiles(&mem, 33)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "(32 for itself, and a client per front end)")
}

// A password file written by an editor that starts it with a UTF-8 byte
// order mark, and ends it with CRLF, holds the password alone.
func TestPasswordFileWithByteOrderMark(t *testing.T) {
	pwFile := filepath.Join(t.TempDir(), "pw")
	require.NoError(t, os.WriteFile(pwFile, []byte("\ufeffhunter2\r\n"), 0o600))
	addr, stop := serveInProcess(t, "--password-file", pwFile)
	rc := redis.NewClient(&redis.Options{Addr: addr, Password: "hunter2"})
	assert.NoError(t, rc.Ping(context.Background()).Err())
	require.NoError(t, rc.Close())
	assert.Equal(t, exitOK, stop())
}

// Caps far above any open-file limit (a host's "unlimited") are lowered to
// fit it too: neither their sum nor their scaling may wrap around.
func TestFitOpenFilesWithHugeCaps(t *testing.T) {
	var out, errOut bytes.Buffer
	o, _, _ := parse([]string{"--text-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"}, nil, &out, &errOut)
	const limit = 1 << 20
	for name, set := range map[string]func(h *options){
		"one":  func(h *options) { h.maxClients = math.MaxInt64 },
		"two":  func(h *options) { h.maxClients, h.textMaxClients = math.MaxInt64, math.MaxInt64 },
		"1e14": func(h *options) { h.maxClients = 1e14 },
	} {
		t.Run(name, func(t *testing.T) {
			h := o
			set(&h)
			storeMax, warnings, err := fitOpenFiles(&h, limit)
			require.NoError(t, err)
			assert.NotEmpty(t, warnings)
			assert.LessOrEqual(t, h.maxClients+h.textMaxClients+h.httpMaxConns+storeMax+reservedFiles, limit)
			assert.Greater(t, h.maxClients, limit/4, "the huge cap gets its share of the limit")
		})
	}
}

// JSON logs write durations as the text logs do ("1.5s"), not as a bare
// number of nanoseconds; other values keep their JSON types.
func TestJSONLogDurationsAreText(t *testing.T) {
	for _, tc := range []struct {
		format string
		want   string
	}{{"json", `"took":"1.5s"`}, {"text", "took=1.5s"}} {
		t.Run(tc.format, func(t *testing.T) {
			var buf bytes.Buffer
			log := newLogger(options{logFormat: tc.format, logLevel: "info"}, &buf)
			log.Info("kv stopped", "took", 1500*time.Millisecond, "buckets", 3)
			assert.Contains(t, buf.String(), tc.want)
			if tc.format == "json" {
				var line map[string]any
				require.NoError(t, json.Unmarshal(buf.Bytes(), &line))
				assert.Equal(t, "1.5s", line["took"])
				assert.Equal(t, float64(3), line["buckets"], "a number stays a number")
			}
		})
	}
}

// The ceiling of CONFIG SET maxclients in each of fitOpenFiles's cases:
// what the limit leaves once the store, kv's own files and the other
// front ends' caps (those served) have theirs, and never below the cap it
// fitted, or CONFIG SET maxclients could not restate the current value.
func TestFitOpenFilesCeiling(t *testing.T) {
	var out, errOut bytes.Buffer
	both, _, _ := parse([]string{"--text-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"}, nil, &out, &errOut)
	alone, _, _ := parse(nil, nil, &out, &errOut)
	for _, tc := range []struct {
		name  string
		o     options
		set   func(o *options)
		limit uint64
		want  func(o options) int
	}{
		{"resp alone", alone, func(*options) {}, 1 << 20, func(options) int { return 1<<20 - storeFiles - reservedFiles }},
		{"in memory", both, func(o *options) { o.inMemory = true }, 1 << 20, func(o options) int {
			return 1<<20 - reservedFiles - o.textMaxClients - o.httpMaxConns
		}},
		{"no limit Linux allows", both, func(*options) {}, 1 << 40, func(options) int { return 0 }},
		{"the largest limit", alone, func(*options) {}, math.MaxInt32, func(options) int { return math.MaxInt32 - storeFiles - reservedFiles }},
		// 35 files in memory: 32 for kv, 3 for the caps, 100, 1 and 1,
		// lowered to 2, 1 and 1 (each front end keeps one): the cap, 2,
		// is past what the others leave (1), and is the ceiling.
		{"caps rounded up", both, func(o *options) {
			o.inMemory, o.maxClients, o.textMaxClients, o.httpMaxConns = true, 100, 1, 1
		}, 35, func(o options) int { return o.maxClients }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.o
			tc.set(&o)
			_, _, err := fitOpenFiles(&o, tc.limit)
			require.NoError(t, err)
			assert.Equal(t, tc.want(o), o.maxClientsCeiling)
			if o.maxClientsCeiling != 0 {
				assert.GreaterOrEqual(t, o.maxClientsCeiling, o.maxClients)
			}
		})
	}
}

// The limit a warning (or the refusal) asks for holds the caps as
// configured: started again under it, kv lowers none, and one file less
// still lowers one. Before, it was worked out from the caps cut to the
// short limit: under `ulimit -n 200`, in memory, it asked for 632 where
// the caps (10,000, 1,024 and 1,024) and kv's 32 files need 12,080.
func TestFitOpenFilesAsksForALimitThatHoldsTheCaps(t *testing.T) {
	var out, errOut bytes.Buffer
	o, _, _ := parse([]string{"--text-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"}, nil, &out, &errOut)
	asked := regexp.MustCompile(`to (\d+) for the configured caps`)
	for _, tc := range []struct {
		name     string
		inMemory bool
		limit    uint64
		refused  bool
	}{
		{"in memory", true, 200, false},
		{"durable", false, 1040, false},
		{"durable, refused", false, 64, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			short := o
			short.inMemory = tc.inMemory
			configured := short
			_, warnings, err := fitOpenFiles(&short, tc.limit)
			var message string
			if tc.refused {
				require.Error(t, err)
				message = err.Error()
			} else {
				require.NoError(t, err)
				require.NotEmpty(t, warnings)
				message = warnings[0]
			}
			m := asked.FindStringSubmatch(message)
			require.NotNil(t, m, message)
			want, err := strconv.ParseUint(m[1], 10, 64)
			require.NoError(t, err)
			files := uint64(configured.maxClients + configured.textMaxClients + configured.httpMaxConns + reservedFiles)
			if !tc.inMemory {
				files += storeFiles
			}
			assert.Equal(t, files, want, message)

			enough := configured
			_, warnings, err = fitOpenFiles(&enough, want)
			require.NoError(t, err)
			assert.Empty(t, warnings, "the limit asked for holds the caps")
			assert.Equal(t, configured.maxClients, enough.maxClients)
			short = configured
			_, warnings, err = fitOpenFiles(&short, want-1)
			require.NoError(t, err)
			assert.NotEmpty(t, warnings, "one file less does not")
		})
	}
	huge := o
	huge.maxClients, huge.textMaxClients = math.MaxInt64, math.MaxInt64
	_, warnings, err := fitOpenFiles(&huge, 1<<20)
	require.NoError(t, err)
	require.NotEmpty(t, warnings)
	assert.Contains(t, warnings[0], fmt.Sprintf("to %d for the configured caps", uint64(math.MaxUint64)),
		"caps past what any limit holds ask for the largest, not a sum wrapped around")
}
