package resp

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/kvproject/kv/internal/store"
	"github.com/kvproject/kv/services"
)

// discardConn is a net.Conn whose writes vanish, for driving the command
// layer without a socket.
type discardConn struct{}

func (discardConn) Read([]byte) (int, error)    { return 0, io.EOF }
func (discardConn) Write(b []byte) (int, error) { return len(b), nil }
func (discardConn) Close() error                { return nil }
func (discardConn) LocalAddr() net.Addr         { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 6380} }
func (discardConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000}
}
func (discardConn) SetDeadline(time.Time) error      { return nil }
func (discardConn) SetReadDeadline(time.Time) error  { return nil }
func (discardConn) SetWriteDeadline(time.Time) error { return nil }

// commandLayer is a tree and a server whose commands are called directly.
func commandLayer(tb testing.TB, cfg Config) (*Server, context.Context) {
	tb.Helper()
	root := services.New(services.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	errc := root.ServeBackground(ctx)
	tb.Cleanup(func() { cancel(); <-errc })
	cfg.Registry = root.Registry()
	cfg.Events = root.Events()
	return New(cfg), ctx
}

var fuzzSeeds = []string{
	"PING", "PING\x00hello", "ECHO\x00x", "HSET\x00h\x00f\x00v", "HSET\x00h\x00f\x00v\x00g\x00w",
	"HGET\x00h\x00f", "HMGET\x00h\x00f\x00g", "HDEL\x00h\x00f", "HINCRBY\x00h\x00n\x00-9223372036854775808",
	"HINCRBYFLOAT\x00h\x00x\x001e308", "HSCAN\x00h\x000\x00MATCH\x00[a-\x00COUNT\x005", "HRANDFIELD\x00h\x00-5\x00WITHVALUES",
	"SCAN\x0018446744073709551615", "KEYS\x00[^]\\", "RENAME\x00h\x00h2", "DEL\x00h2", "FLUSHALL", "INFO\x00all",
	"CLIENT\x00LIST", "COMMAND\x00DOCS", "HELLO\x002\x00SETNAME\x00x", "SUBSCRIBE\x00kv:created", "PSUBSCRIBE\x00*",
	"UNSUBSCRIBE", "RESET", "AUTH\x00x", "CONFIG\x00GET\x00*", "DEBUG\x00CRASH-BUCKET\x00h", "SELECT\x009", "QUIT",
	// Several commands on one client (separated by \x01 in FuzzCommand, by
	// a line end on the socket): transactions keep state between them.
	"WATCH\x00h\x01MULTI\x01HSET\x00h\x00f\x00v\x01EXEC", "MULTI\x01HSET\x00h\x01EXEC",
	"MULTI\x01MULTI\x01WATCH\x00h\x01DISCARD\x01EXEC", "MULTI\x01DEL\x00h\x01RENAME\x00h\x00g\x01FLUSHALL\x01EXEC",
	"MULTI\x01SUBSCRIBE\x00x\x01RESET\x01EXEC", "WATCH\x00h\x00g\x01UNWATCH\x01MULTI\x01HINCRBY\x00h\x00n\x001\x01EXEC",
	"SLOWLOG\x00GET\x00-1", "SLOWLOG\x00RESET\x01SLOWLOG\x00LEN", "SLOWLOG\x00HELP", "MEMORY\x00USAGE\x00h\x00SAMPLES\x000",
	"MEMORY\x00HELP", "RANDOMKEY", "TOUCH\x00h\x00h", "SUBSCRIBE\x00a\x01PUBSUB\x00NUMSUB\x00a", "PUBSUB\x00CHANNELS\x00*", "COMMAND\x00GETKEYS\x00RENAME\x00a\x00b", "WAIT\x000\x000", "WAITAOF\x000\x001\x0010", "CONFIG\x00RESETSTAT\x01INFO\x00commandstats",
	"AUTH\x00user\x00secret\x01SLOWLOG\x00GET", "MULTI\x01WAITAOF\x001\x000\x000\x01SLOWLOG\x00GET\x01EXEC",
	"HSET\x00h\x00f\x00v\x01RENAMENX\x00h\x00g\x01RENAMENX\x00g\x00g", "COPY\x00h\x00g\x00DB\x000\x00REPLACE",
	"MULTI\x01COPY\x00h\x00g\x01COPY\x00g\x00h\x00replace\x00db\x00-1\x01EXEC",
	"MONITOR\x01PING\x01HGET\x00h\x00f\x01MONITOR\x01CLIENT\x00LIST\x01RESET\x01HGET\x00h\x00f",
	"MONITOR\x01MULTI\x01ECHO\x00x\x01HSET\x00h\x00f\x00v\x01EXEC\x01AUTH\x00a\x00b\x01QUIT",
	"CONFIG\x00SET\x00slowlog-max-len\x001\x00SLOWLOG-LOG-SLOWER-THAN\x000\x01SLOWLOG\x00GET\x01CONFIG\x00SET\x00save\x00",
	"CONFIG\x00SET\x00maxclients\x001\x00port\x000\x01CONFIG\x00SET\x00slowlog-max-len\x00x",
	// On a durable store, a checkpoint before the reply, and one after it
	// on a goroutine that may outlive its input.
	"SAVE\x01LASTSAVE", "BGSAVE\x01SAVE\x01BGSAVE\x00SCHEDULE",
	"OBJECT\x00ENCODING\x00h\x01OBJECT\x00FREQ\x00h\x01OBJECT\x00IDLETIME\x00nokey\x01OBJECT\x00HELP",
	"HGET\x00h\x00f\x01LATENCY\x00HISTOGRAM\x01LATENCY\x00HISTOGRAM\x00hget\x00nope\x01LATENCY\x00GRAPH\x00x\x01LATENCY\x00DOCTOR\x01CONFIG\x00RESETSTAT",
	// RESP3: maps, sets, nulls and pushes, and a subscriber that runs
	// any command.
	"HELLO\x003\x01HSET\x00h\x00f\x00v\x01HGETALL\x00h\x01HMGET\x00h\x00f\x00x\x01HRANDFIELD\x00h\x00-3\x00WITHVALUES\x01CONFIG\x00GET\x00*\x01COMMAND\x00DOCS\x00hset\x01COMMAND\x00INFO\x00hget\x00nope\x01INFO\x01CLIENT\x00LIST\x01HELLO\x01RESET\x01HGET\x00h\x00x",
	"HELLO\x003\x01SUBSCRIBE\x00kv:created\x01HSET\x00n\x00f\x00v\x01HGET\x00n\x00f\x01PING\x01MULTI\x01HGET\x00n\x00f\x01EXEC\x01HELLO\x002\x01HGET\x00n\x00f\x01UNSUBSCRIBE",
}

// discardObserver takes every observation and keeps none: the observed
// path (INFO commandstats, the slow log) runs under the fuzzers.
type discardObserver struct{}

func (discardObserver) ObserveCommand(string, string, time.Duration, bool) {}
func (discardObserver) ObserveClients(string, int)                         {}

// FuzzCommand runs arbitrary argument vectors (commands separated by \x01,
// their arguments by NUL) through the command layer, on one client: no
// panic, no hang, no goroutine left behind.
func FuzzCommand(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	s, ctx := commandLayer(f, Config{EnableDebugCommand: true, Password: "",
		Observer: discardObserver{}, SlowlogSlowerThan: time.Nanosecond, SlowlogMaxLen: 4})
	f.Fuzz(func(t *testing.T, data []byte) {
		c := newConn(s, discardConn{})
		defer c.close()
		for cmd := range bytes.SplitSeq(data, []byte{1}) {
			args := bytes.Split(cmd, []byte{0})
			if len(args[0]) == 0 {
				return
			}
			c.do(ctx, args)
		}
		c.do(ctx, [][]byte{[]byte("HGET"), []byte("h"), []byte("f")}) // still sane after
	})
}

// FuzzSocket sends arbitrary bytes to a real listener: the server must
// answer or close, never hang or crash, and keep serving other clients.
func FuzzSocket(f *testing.F) {
	logs := new(panics)
	fuzzSocket(f, start(f, Config{EnableDebugCommand: true, IdleTimeout: 10 * time.Second, Logger: slog.New(logs)}), logs)
}

// FuzzSocketDurable is FuzzSocket against a server on a durable store,
// where a pipeline's writes are answered together once the store has them.
func FuzzSocketDurable(f *testing.F) {
	logs := new(panics)
	ds := startDurable(f, f.TempDir(), store.Options{Fsync: store.FsyncNo},
		func(c *Config) { c.IdleTimeout, c.Logger = 10*time.Second, slog.New(logs) })
	fuzzSocket(f, ds.testServer, logs)
}

// fuzzSocket fuzzes the server at addr, whose log goes to logs: a command
// that panics closes only its client (see Server.survive), which the
// exchange alone would not tell, so its log record fails the input. The
// records are taken at each input: kept, one panic would fail every later
// input of the worker too, and the fuzzer would minimize the crasher to
// any byte ("0"), which then passes alone.
func fuzzSocket(f *testing.F, ts *testServer, logs *panics) {
	addr := ts.addr
	for _, s := range fuzzSeeds {
		s = strings.ReplaceAll(strings.ReplaceAll(s, "\x00", " "), "\x01", "\r\n")
		f.Add([]byte(s + "\r\n"))
	}
	for _, s := range []string{
		"*1\r\n$4\r\nPING\r\n", "*3\r\n$4\r\nHSET\r\n$1\r\nh\r\n$1\r\nf\r\n", "*-1\r\n", "*1\r\n$-100\r\n",
		"*2\r\n$4\r\nECHO\r\n$99999999999999999999\r\n", "$5 hello\r\n", "\"unbalanced\r\n", "*1\r\n$4\r\nPI",
		"*0\r\n*1\r\n$4\r\nPING\r\n", "SUBSCRIBE a\r\nHGET x y\r\nPING\r\nUNSUBSCRIBE\r\nPING\r\n",
		"*-5\r\n*1\r\n$4\r\nPING\r\n", "*-0\r\nPING\r\n", "*-9223372036854775809\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if seen := logs.take(); seen != "" {
			t.Fatalf("logged after its input had passed (an earlier input's, not this one's): %s", seen)
		}
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		go func() {
			_, _ = nc.Write(data)
			_ = nc.(*net.TCPConn).CloseWrite()
		}()
		_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.Copy(io.Discard, nc); err != nil {
			t.Fatalf("the server neither answered nor closed: %v", err)
		}
		if seen := logs.take(); seen != "" {
			t.Fatalf("%s", seen)
		}
		// Another client is served as usual (an input may have lowered
		// maxclients with CONFIG SET, as an operator may: not a fault).
		ts.srv.maxClients.Store(int64(ts.srv.cfg.MaxClients))
		other, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		_ = other.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := other.Write([]byte("PING\r\n")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 7)
		if _, err := io.ReadFull(other, buf); err != nil || string(buf) != "+PONG\r\n" {
			t.Fatalf("PING after the input: %q, %v", buf, err)
		}
	})
}
