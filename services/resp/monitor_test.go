package resp

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// monitorLine is Redis's MONITOR line: the time in seconds with six digits
// of microseconds, the database and the client, then the arguments.
var monitorLine = regexp.MustCompile(`^\+(\d+)\.(\d{6}) \[0 ([^\]]+)\] (.*)$`)

// monitorOf sends MONITOR on r and reads its +OK.
func monitorOf(r *raw) {
	r.t.Helper()
	r.send("MONITOR\r\n")
	r.expect("+OK")
}

// shown reads one MONITOR line from r and returns its client and its
// arguments as they are quoted, checking its time against now.
func (r *raw) shown() (client, args string) {
	r.t.Helper()
	l := r.line()
	m := monitorLine.FindStringSubmatch(l)
	require.NotNil(r.t, m, "a MONITOR line: %q", l)
	sec, err := strconv.ParseInt(m[1], 10, 64)
	require.NoError(r.t, err)
	assert.InDelta(r.t, time.Now().Unix(), sec, 60, "the line's time: %q", l)
	return m[3], m[4]
}

// resp encodes args as one RESP request.
func resp(args ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.String()
}

// MONITOR shows what Redis 7 shows, in its format (checked side by side
// with Redis 7.0.15): every command that runs, after it has run (a
// transaction's commands, then EXEC), its arguments quoted as C strings,
// AUTH's and HELLO's secrets redacted; not a command refused before it
// ran (unknown, wrong arity), nor an administrative one.
func TestMonitorShowsTheCommandsThatRun(t *testing.T) {
	ts := start(t, Config{})
	mon := ts.raw(t)
	monitorOf(mon)
	c := ts.raw(t)
	addr := c.nc.LocalAddr().String()
	for _, tc := range []struct {
		args    []string
		replies int    // reply lines to read
		shown   string // "": not shown
	}{
		{[]string{"HSET", "h", "f", "v\x00\n\"\\é\t\r\a\b\x7f "}, 1, `"HSET" "h" "f" "v\x00\n\"\\\xc3\xa9\t\r\a\b\x7f "`},
		{[]string{"hget", "h", "f"}, 3, `"hget" "h" "f"`},
		{[]string{"HSET", "h", "n", "123"}, 1, `"HSET" "h" "n" "123"`},
		{[]string{"GET", "h"}, 1, `"GET" "h"`}, // WRONGTYPE: it ran
		{[]string{"AUTH", "secret"}, 1, `"AUTH" "(redacted)"`},
		{[]string{"AUTH", "default", "secret"}, 1, `"AUTH" "(redacted)" "(redacted)"`},
		{[]string{"NOSUCH", "x"}, 1, ""},
		{[]string{"HGET", "h"}, 1, ""},
		{[]string{"CONFIG", "GET", "port"}, 5, ""},
		{[]string{"SLOWLOG", "LEN"}, 1, ""},
		{[]string{"CLIENT", "KILL", "ID", "999999"}, 1, ""},
		{[]string{"CLIENT", "NO-EVICT", "off"}, 1, ""},
		{[]string{"CLIENT", "LIST", "ID", "999999"}, 2, ""},
		{[]string{"LATENCY", "LATEST"}, 1, ""},
		{[]string{"DEBUG", "CRASH-BUCKET", "h"}, 1, ""},
		{[]string{"BGSAVE"}, 1, ""},
		{[]string{"SAVE"}, 1, ""},
		{[]string{"SHUTDOWN"}, 1, ""},
		{[]string{"CLIENT", "GETNAME"}, 1, `"CLIENT" "GETNAME"`},
		{[]string{"PING"}, 1, `"PING"`},
	} {
		c.send(resp(tc.args...))
		for range tc.replies {
			c.line()
		}
		if tc.shown == "" {
			continue
		}
		client, args := mon.shown()
		assert.Equal(t, addr, client)
		assert.Equal(t, tc.shown, args, "%q", tc.args)
	}
	// HELLO's AUTH: its user name and password, and nothing else.
	c.send(resp("HELLO", "2", "AUTH", "default", "secret", "SETNAME", "x") + resp("PING"))
	for c.line() != "+PONG" { // HELLO's reply, however kv answers it
	}
	_, args := mon.shown()
	assert.Equal(t, `"HELLO" "2" "AUTH" "(redacted)" "(redacted)" "SETNAME" "x"`, args)
	_, args = mon.shown()
	assert.Equal(t, `"PING"`, args)

	// A transaction: MULTI as it runs, its commands as EXEC runs them
	// (not as they are queued), then EXEC.
	c.send(resp("MULTI") + resp("HSET", "h", "a", "1") + resp("HGET", "h", "a") + resp("EXEC"))
	c.expect("+OK", "+QUEUED", "+QUEUED", "*2", ":1", "$1", "1")
	for _, want := range []string{`"MULTI"`, `"HSET" "h" "a" "1"`, `"HGET" "h" "a"`, `"EXEC"`} {
		_, args := mon.shown()
		assert.Equal(t, want, args)
	}

	// Redis's timestamps: six digits of microseconds, as %06ld.
	c.send(resp("ECHO", "x"))
	c.expect("$1", "x")
	l := mon.line()
	require.Regexp(t, `^\+\d+\.\d{6} `, l)
}

// A client in MONITOR mode may not touch keys (Redis: "Replica can't
// interact with the keyspace"); its other commands are answered, each
// reply followed by the command's own line. A second MONITOR is ignored,
// RESET ends the mode, and MONITOR is refused in a transaction and to a
// subscriber.
func TestMonitorClientCommands(t *testing.T) {
	ts := start(t, Config{})
	// Connected before the MONITOR: its handshake would show.
	cl := ts.client(t, func(o *redis.Options) { o.PoolSize = 1 })
	require.NoError(t, cl.HSet(context.Background(), "h", "f", "v").Err())
	mon := ts.raw(t)
	monitorOf(mon)
	addr := mon.nc.LocalAddr().String()
	for _, args := range [][]string{
		{"HGET", "h", "f"}, {"HSET", "h", "f", "w"}, {"GET", "h"}, {"DEL", "h"}, {"KEYS", "*"},
		{"DBSIZE"}, {"SCAN", "0"}, {"TTL", "h"}, {"FLUSHALL"}, {"MEMORY", "USAGE", "h"}, {"RENAME", "h", "g"},
	} {
		mon.send(resp(args...))
		mon.expect("-ERR Replica can't interact with the keyspace")
	}
	for _, tc := range []struct {
		args    []string
		replies []string
	}{
		{[]string{"PING"}, []string{"+PONG"}},
		{[]string{"ECHO", "hi"}, []string{"$2", "hi"}},
		{[]string{"WAIT", "0", "0"}, []string{":0"}},
		{[]string{"CLIENT", "SETNAME", "watcher"}, []string{"+OK"}},
	} {
		mon.send(resp(tc.args...))
		mon.expect(tc.replies...)
		client, args := mon.shown()
		assert.Equal(t, addr, client)
		assert.Equal(t, `"`+strings.Join(tc.args, `" "`)+`"`, args)
	}
	// A keyspace command queued in a transaction is refused as it is
	// queued, and the transaction aborts.
	mon.send(resp("MULTI") + resp("HGET", "h", "f") + resp("EXEC"))
	mon.expect("+OK")
	_, args := mon.shown()
	assert.Equal(t, `"MULTI"`, args)
	mon.expect("-ERR Replica can't interact with the keyspace", "-EXECABORT Transaction discarded because of previous errors.")
	_, args = mon.shown()
	assert.Equal(t, `"EXEC"`, args)

	// CLIENT LIST shows the monitor with Redis's flag O.
	list, err := cl.ClientList(context.Background()).Result() // not shown
	require.NoError(t, err)
	assert.Contains(t, list, "name=watcher age=")
	assert.Regexp(t, `name=watcher age=\d+ idle=\d+ flags=O `, list)

	mon.send(resp("MONITOR") + resp("PING"))
	mon.expect("+PONG") // no reply to the second MONITOR
	_, args = mon.shown()
	assert.Equal(t, `"PING"`, args)

	mon.send(resp("RESET"))
	mon.expect("+RESET")
	other := ts.raw(t)
	other.send(resp("HGET", "h", "f"))
	other.expect("$1", "v")
	mon.send(resp("HGET", "h", "f"))
	mon.expect("$1", "v") // a normal client again, which saw no line for other's HGET
	list, err = cl.ClientList(context.Background()).Result()
	require.NoError(t, err)
	assert.NotContains(t, list, "flags=O")

	tx := ts.raw(t)
	tx.send(resp("MULTI") + resp("MONITOR") + resp("EXEC"))
	tx.expect("+OK", "-ERR Command not allowed inside a transaction", "-EXECABORT Transaction discarded because of previous errors.")

	sub := ts.raw(t)
	sub.send(resp("SUBSCRIBE", "kv:created"))
	sub.expect("*3", "$9", "subscribe", "$10", "kv:created", ":1")
	sub.send(resp("MONITOR"))
	sub.expect("-ERR Can't execute 'monitor': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context")
}

// Every line reaches every monitor, each client's in the order it ran
// them, however many clients write at once; a monitor that comes and goes
// meanwhile (MONITOR, RESET, over and over) disturbs neither them nor the
// others.
func TestMonitorMissesNoLine(t *testing.T) {
	ts := start(t, Config{})
	const writers, each = 8, 300
	mons := []*raw{ts.raw(t), ts.raw(t)}
	for _, m := range mons {
		monitorOf(m)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	stopFlapping := make(chan struct{})
	flapped := make(chan int)
	flapper, err := net.Dial("tcp", ts.addr)
	require.NoError(t, err)
	t.Cleanup(func() { flapper.Close() })
	go func() {
		rd := bufio.NewReader(flapper)
		n := 0
		defer func() { flapped <- n }()
		for {
			select {
			case <-stopFlapping:
				return
			default:
			}
			if _, err := flapper.Write([]byte(resp("MONITOR") + resp("RESET"))); err != nil {
				t.Errorf("flapping monitor: %v", err)
				return
			}
			// Lines may come between its +OK and its +RESET.
			for {
				l, err := rd.ReadString('\n')
				if err != nil {
					t.Errorf("flapping monitor: %v", err)
					return
				}
				l = strings.TrimSuffix(l, "\r\n")
				if l == "+RESET" {
					break
				}
				if l != "+OK" && !monitorLine.MatchString(l) {
					t.Errorf("flapping monitor: %q", l)
					return
				}
			}
			n++
		}
	}()
	addrs := make([]string, writers)
	for w := range writers {
		cl := ts.client(t, func(o *redis.Options) { o.PoolSize = 1; o.Protocol = 2; o.DisableIdentity = true })
		require.NoError(t, cl.Ping(ctx).Err())
		info, err := cl.ClientInfo(ctx).Result()
		require.NoError(t, err)
		addrs[w] = info.Addr
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := cl.HSet(ctx, "k"+strconv.Itoa(w%3), strconv.Itoa(w), strconv.Itoa(i)).Err(); err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stopFlapping)
	assert.Positive(t, <-flapped, "the third monitor came and went")

	for mi, m := range mons {
		next := map[string]int{}
		for seen := 0; seen < writers*each; {
			client, args := m.shown()
			f := strings.Fields(args)
			if len(f) != 4 || f[0] != `"hset"` {
				continue // the writers' PING and CLIENT INFO, the flapper's RESET
			}
			w, err := strconv.Atoi(strings.Trim(f[2], `"`))
			require.NoError(t, err, args)
			i, err := strconv.Atoi(strings.Trim(f[3], `"`))
			require.NoError(t, err, args)
			require.Equal(t, addrs[w], client, "monitor %d: %s", mi, args)
			require.Equal(t, next[client], i, "monitor %d: writer %d's writes in order", mi, w)
			next[client]++
			seen++
		}
	}
}

// A monitor that does not keep up is disconnected, by the rule its
// subscribers follow: when the lines waiting for it would pass
// MaxReplyBytes, or when it does not read for WriteTimeout. The writers
// never wait for it, and lose nothing.
func TestSlowMonitorIsDisconnected(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"its lines pass MaxReplyBytes", Config{MaxReplyBytes: 64 << 10, WriteTimeout: time.Minute}},
		{"it does not read for WriteTimeout", Config{MaxReplyBytes: 256 << 20, WriteTimeout: 200 * time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := start(t, tc.cfg)
			mon := ts.raw(t)
			require.NoError(t, mon.nc.(*net.TCPConn).SetReadBuffer(4096))
			monitorOf(mon) // and never reads again
			ctx := context.Background()
			cl := ts.client(t)
			value := strings.Repeat("x", 4096)
			n := 0
			require.Eventually(t, func() bool {
				pipe := cl.Pipeline()
				for range 64 {
					pipe.HSet(ctx, "h", "f"+strconv.Itoa(n), value)
					n++
				}
				_, err := pipe.Exec(ctx)
				require.NoError(t, err)
				return strings.Contains(cl.Info(ctx, "stats").Val(), "slow_monitors_disconnected:1\r\n")
			}, 30*time.Second, time.Millisecond, "the monitor is disconnected")
			mon.requireClosedForWrites()
			hlen, err := cl.HLen(ctx, "h").Result()
			require.NoError(t, err)
			assert.Equal(t, int64(n), hlen, "every write is there")
		})
	}
}

// A client on a Unix socket shows as Redis shows it: unix: and the path.
func TestMonitorShowsUnixSocketClients(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kv.sock")
	ln, err := net.Listen("unix", path)
	require.NoError(t, err)
	start(t, Config{Listener: ln})
	dial := func() *raw {
		nc, err := net.Dial("unix", path)
		require.NoError(t, err)
		t.Cleanup(func() { nc.Close() })
		return &raw{t: t, nc: nc, rd: bufio.NewReader(nc)}
	}
	mon := dial()
	monitorOf(mon)
	c := dial()
	c.send(resp("ECHO", "over a socket file"))
	c.expect("$18", "over a socket file")
	client, args := mon.shown()
	assert.Equal(t, "unix:"+path, client)
	assert.Equal(t, `"ECHO" "over a socket file"`, args)
}

// A monitor is never timed out for idling, as in Redis: it has been idle
// longer than a client that IdleTimeout closed, and still gets its lines.
// The idle timeout is a second: each client's first command must come
// within it of its connection.
func TestMonitorIsNotTimedOutForIdling(t *testing.T) {
	ts := start(t, Config{IdleTimeout: time.Second})
	mon := ts.raw(t)
	monitorOf(mon)
	r := ts.raw(t)
	r.send(resp("PING"))
	r.expect("+PONG")
	assert.True(t, r.closed(), "an idle client is closed")
	_, args := mon.shown()
	assert.Equal(t, `"PING"`, args)

	c := ts.raw(t)
	c.send(resp("ECHO", "still there"))
	c.expect("$11", "still there")
	_, args = mon.shown()
	assert.Equal(t, `"ECHO" "still there"`, args)
}

// MONITOR's +OK comes before any line, however busy the other clients are.
func TestMonitorOKComesFirst(t *testing.T) {
	ts := start(t, Config{})
	busy := ts.raw(t)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := busy.nc.Write([]byte(strings.Repeat(resp("PING"), 16))); err != nil {
				return
			}
			for range 16 {
				if _, err := busy.rd.ReadString('\n'); err != nil {
					return
				}
			}
		}
	}()
	defer func() { close(stop); <-done }()
	for range 50 {
		mon := ts.raw(t)
		monitorOf(mon)
		_, args := mon.shown()
		require.Equal(t, `"PING"`, args)
		require.NoError(t, mon.nc.Close())
	}
}

// A command whose line would pass MaxReplyBytes alone shows as SLOWLOG
// shows it (32 arguments at most, 128 bytes of each, and how much more),
// and its monitor stays: the rule that disconnects a monitor is about
// the lines waiting for it, which one command must not make.
func TestMonitorCutsALineTooLong(t *testing.T) {
	ts := start(t, Config{MaxReplyBytes: 64 << 10})
	mon := ts.raw(t)
	monitorOf(mon)
	c := ts.raw(t)
	long := strings.Repeat("\x01", 20<<10) // 80 KiB quoted
	c.send(resp("HSET", "h", "f", long))
	c.expect(":1")
	_, args := mon.shown()
	assert.Equal(t, `"HSET" "h" "f" "`+strings.Repeat(`\x01`, 128)+`... (20352 more bytes)"`, args)

	many := []string{"HSET", "m"}
	for i := range 40 {
		many = append(many, "f"+strconv.Itoa(i), strings.Repeat("v", 2<<10))
	}
	c.send(resp(many...))
	c.expect(":40")
	_, args = mon.shown()
	shown := strings.Split(args, `" "`)
	require.Len(t, shown, 32)
	assert.Equal(t, `"HSET`, shown[0])
	assert.Equal(t, "f0", shown[2])
	assert.Equal(t, strings.Repeat("v", 128)+"... (1920 more bytes)", shown[3])
	assert.Equal(t, `... (51 more arguments)"`, shown[31])

	// A line that fits is shown whole.
	c.send(resp("HSET", "h", "g", strings.Repeat("w", 10<<10)))
	c.expect(":1")
	_, args = mon.shown()
	assert.Equal(t, `"HSET" "h" "g" "`+strings.Repeat("w", 10<<10)+`"`, args)
	assert.Contains(t, ts.client(t).Info(context.Background(), "stats").Val(), "slow_monitors_disconnected:0\r\n")
}

// A monitor's own QUIT gets its +OK alone, as in Redis, which closes the
// connection before the line could follow.
func TestMonitorQuitGetsItsOKAlone(t *testing.T) {
	ts := start(t, Config{})
	mon := ts.raw(t)
	monitorOf(mon)
	mon.send(resp("QUIT"))
	mon.expect("+OK")
	require.NoError(t, mon.nc.SetReadDeadline(time.Now().Add(10*time.Second)))
	rest, err := io.ReadAll(mon.rd)
	require.NoError(t, err, "the connection is closed")
	assert.Empty(t, string(rest), "nothing after the +OK")
}
