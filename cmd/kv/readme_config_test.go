package main

import (
	"bufio"
	"bytes"
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The defaults of the README's Configuration table: a change to one of
// them is a change to the README too.
func TestDefaultsAreTheREADMEs(t *testing.T) {
	var out, errOut bytes.Buffer
	o, _, done := parse(nil, nil, &out, &errOut)
	require.False(t, done, errOut.String())
	assert.Equal(t, "127.0.0.1:6380", o.respAddr)
	assert.Empty(t, o.textAddr, "the line protocol is off")
	assert.Empty(t, o.httpAddr, "HTTP is off")
	assert.Empty(t, o.password)
	assert.Empty(t, o.passwordFile)
	assert.Equal(t, "text", o.logFormat)
	assert.Equal(t, "info", o.logLevel)
	assert.Equal(t, "./kv-data", o.dataDir)
	assert.Equal(t, "everysec", o.fsync)
	assert.False(t, o.inMemory)
	assert.Equal(t, 10000, o.maxClients)
	assert.Equal(t, 1024, o.textMaxClients)
	assert.Equal(t, 1024, o.httpMaxConns)
	assert.Equal(t, 64<<20, o.maxRequestBytes)
	assert.Equal(t, 64<<20, o.maxReplyBytes)
	assert.Equal(t, 16<<20, o.maxBulkLen)
	assert.Equal(t, 1048576, o.maxArgs)
	assert.Equal(t, 64<<10, o.maxLineBytes)
	assert.Equal(t, int64(1<<20), o.maxBodyBytes)
	assert.Equal(t, 10*time.Millisecond, o.slowerThan)
	assert.Equal(t, 128, o.slowlogMaxLen)
	assert.Equal(t, 5*time.Minute, o.idleTimeout)
	assert.Equal(t, 15*time.Second, o.shutdownTimeout)
	assert.Equal(t, 0, o.keepCheckpoints)
	assert.Zero(t, o.unloadIdle, "every bucket stays in memory")
	assert.False(t, o.enableDebug)
	assert.False(t, o.goroutines)
}

// Every flag but --version has its variable (--resp-addr is
// KV_RESP_ADDR), and a flag wins over its variable: each flag is set
// through its variable, then both are given.
func TestEveryFlagHasItsVariable(t *testing.T) {
	// A value each flag takes that is not its default, and another.
	values := map[string][2]string{
		"resp-addr": {"127.0.0.1:7001", "127.0.0.1:7002"}, "text-addr": {"127.0.0.1:7003", "127.0.0.1:7004"},
		"http-addr": {"127.0.0.1:7005", "127.0.0.1:7006"}, "password": {"a", "b"},
		"password-file": {"/a", "/b"}, "log-format": {"json", "text"}, "log-level": {"debug", "warn"},
		"data-dir": {"/a", "/b"}, "fsync": {"always", "no"}, "in-memory": {"true", "false"},
		"resp-goroutine-per-client": {"true", "false"}, "enable-debug-command": {"true", "false"},
		"idle-timeout": {"1s", "2s"}, "slowlog-slower-than": {"1s", "2s"}, "shutdown-timeout": {"1s", "2s"},
		"unload-idle": {"1m0s", "2m0s"},
	}
	// value reads o's setting of a flag, through a flag set of its own
	// whose flags point into a copy of o.
	value := func(o options, name string) string {
		var c options
		fs := newFlagSet(&c, io.Discard)
		c = o
		return fs.Lookup(name).Value.String()
	}
	fs := newFlagSet(&options{}, io.Discard)
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		n++
		v, ok := values[f.Name]
		if !ok {
			v = [2]string{"7", "8"} // the numbers
		}
		var out, errOut bytes.Buffer
		env := []string{envName(f.Name) + "=" + v[0]}
		if f.Name == "in-memory" || f.Name == "password" || f.Name == "password-file" {
			env = append(env, "KV_DATA_DIR=/x") // what warns or needs another
		}
		o, _, done := parse(nil, env, &out, &errOut)
		require.False(t, done, "%s: %s", env, errOut.String())
		assert.Equal(t, v[0], value(o, f.Name), "%s sets --%s", env[0], f.Name)

		o, _, done = parse([]string{"--" + f.Name + "=" + v[1]}, env, &out, &errOut)
		require.False(t, done, "%s: %s", env, errOut.String())
		assert.Equal(t, v[1], value(o, f.Name), "--%s wins over %s", f.Name, env[0])
	})
	assert.Equal(t, 27, n)
}

// The README's Configuration table names every flag, and only flags kv
// has.
func TestREADMETableNamesEveryFlag(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(readme), "\n## Configuration\n")
	require.True(t, ok)
	_, table, ok := strings.Cut(section, "\n| flag | default | |\n")
	require.True(t, ok)
	table, _, _ = strings.Cut(table, "\n\n")
	var named []string
	for _, row := range strings.Split(table, "\n") {
		first := strings.Split(row, "|")[1] // "| `--a`, `--b` | default | what |"
		for _, m := range regexp.MustCompile("`--([a-z-]+)`").FindAllStringSubmatch(first, -1) {
			named = append(named, m[1])
		}
	}
	var flags []string
	newFlagSet(&options{}, io.Discard).VisitAll(func(f *flag.Flag) { flags = append(flags, f.Name) })
	assert.ElementsMatch(t, flags, named)
}

// Usage errors stay plain text under --log-format json (the README):
// they are about the flags, before any log is set up.
func TestUsageErrorsStayPlainTextUnderJSON(t *testing.T) {
	var out, errOut bytes.Buffer
	assert.Equal(t, exitUsage, run([]string{"--log-format", "json", "--max-args", "0"}, nil, &out, &errOut, nil))
	assert.True(t, strings.HasPrefix(errOut.String(), "kv: limits must be positive: --max-args"), errOut.String())
}

// The limit flags reach the front ends they limit: each is set low, then
// passed.
func TestLimitFlagsReachTheFrontEnds(t *testing.T) {
	l, stop := serveAll(t,
		"--max-clients", "2", "--max-bulk-len", "40", "--max-args", "5",
		"--max-request-bytes", "1024", "--max-reply-bytes", "100", "--idle-timeout", "500ms",
		"--text-addr", "127.0.0.1:0", "--text-max-line-bytes", "16",
		"--http-addr", "127.0.0.1:0", "--http-max-body-bytes", "4")
	defer func() { assert.Equal(t, exitOK, stop()) }()

	dial := func(addr net.Addr) (net.Conn, *bufio.Reader) {
		t.Helper()
		nc, err := net.Dial("tcp", addr.String())
		require.NoError(t, err)
		t.Cleanup(func() { nc.Close() })
		require.NoError(t, nc.SetReadDeadline(time.Now().Add(10*time.Second)))
		return nc, bufio.NewReader(nc)
	}
	roundTrip := func(nc net.Conn, rd *bufio.Reader, send string) string {
		t.Helper()
		_, err := io.WriteString(nc, send)
		require.NoError(t, err)
		line, err := rd.ReadString('\n')
		require.NoError(t, err, "after %q", send)
		return line
	}

	// The Redis protocol: --max-bulk-len, --max-args, --max-reply-bytes.
	c, rd := dial(l.resp)
	value := strings.Repeat("v", 40)
	assert.Equal(t, ":1\r\n", roundTrip(c, rd, "HSET h f "+value+"\r\n"))
	assert.Contains(t, roundTrip(c, rd, "HSET h f "+value+"x\r\n"), "argument longer than 40 bytes")
	assert.Contains(t, roundTrip(c, rd, "HSET h f v g h i\r\n"), "too many arguments (the limit is 5)")
	assert.Contains(t, roundTrip(c, rd, "HMGET h f f f\r\n"), "pass 100 bytes")
	// --max-clients: a third client is refused.
	second, _ := dial(l.resp)
	third, rd3 := dial(l.resp)
	assert.Equal(t, "-ERR max number of clients reached\r\n", roundTrip(third, rd3, "PING\r\n"))
	require.NoError(t, third.Close())
	require.NoError(t, second.Close())
	// --max-request-bytes: a request past it closes its client (once
	// the second client's slot is free).
	var big net.Conn
	var rdBig *bufio.Reader
	require.Eventually(t, func() bool {
		big, rdBig = dial(l.resp)
		if roundTrip(big, rdBig, "PING\r\n") == "+PONG\r\n" {
			return true
		}
		big.Close()
		return false
	}, 10*time.Second, time.Millisecond)
	assert.Contains(t, roundTrip(big, rdBig, "*2\r\n$3\r\nGET\r\n$2000\r\n"+strings.Repeat("x", 1500)), "request too large")
	_, err := rdBig.ReadString('\n')
	assert.Error(t, err, "the client past --max-request-bytes is closed") // EOF, or a reset: it had sent more
	// --idle-timeout: a client that sends nothing is closed (its read
	// deadline, 10 s, is far longer).
	_, err = rd.ReadString('\n')
	assert.ErrorIs(t, err, io.EOF, "the idle client is closed")

	// The line protocol: --text-max-line-bytes (16 with the "\r").
	tc, trd := dial(l.text)
	assert.Equal(t, "OK\r\n", roundTrip(tc, trd, "CREATE abcdefgh\r\n"))
	assert.Equal(t, "ERROR\r\n", roundTrip(tc, trd, "CREATE abcdefghi\r\n"))

	// HTTP: --http-max-body-bytes; and POST /v1/save in memory is 503.
	do := func(method, path, body string) int {
		t.Helper()
		req, err := http.NewRequest(method, "http://"+l.http.String()+path, strings.NewReader(body))
		require.NoError(t, err)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		return res.StatusCode
	}
	defer http.DefaultClient.CloseIdleConnections()
	assert.Equal(t, http.StatusNoContent, do("PUT", "/v1/buckets/b", ""))
	assert.Equal(t, http.StatusNoContent, do("PUT", "/v1/buckets/b/keys/k", "1234"))
	assert.Equal(t, http.StatusRequestEntityTooLarge, do("PUT", "/v1/buckets/b/keys/k", "12345"))
	assert.Equal(t, http.StatusServiceUnavailable, do("POST", "/v1/save", ""), "--in-memory: nothing to save")
}
