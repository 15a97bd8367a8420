package resp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/internal/store"
)

// After HELLO 3 the replies take RESP3's types, byte for byte as Redis
// 7.0.15 sends them (checked side by side): nulls are _, HGETALL and
// CONFIG GET maps, COMMAND INFO's flags sets, INFO and CLIENT INFO
// verbatim text, unsubscribe notices pushes; PUBSUB NUMSUB stays an array,
// as in Redis 7.0. HELLO without a version keeps the protocol, HELLO 2
// and RESET go back to RESP2.
func TestRESP3Replies(t *testing.T) {
	ts := start(t, Config{})
	r := ts.raw(t)
	r.send("HELLO 3\r\n")
	r.expect("%7", "$6", "server", "$2", "kv", "$7", "version", "$"+strconv.Itoa(len(RedisVersion)), RedisVersion,
		"$5", "proto", ":3")
	r.helloRest() // id, mode, role, modules
	for _, tc := range []struct {
		cmd  string
		want []string
	}{
		{"HSET h f v", []string{":1"}},
		{"HGET h nope", []string{"_"}},
		{"HGET nokey f", []string{"_"}},
		{"HMGET h f nope", []string{"*2", "$1", "v", "_"}},
		{"HGETALL h", []string{"%1", "$1", "f", "$1", "v"}},
		{"HGETALL nokey", []string{"%0"}},
		{"HRANDFIELD h 1 WITHVALUES", []string{"*1", "*2", "$1", "f", "$1", "v"}},
		{"HRANDFIELD h -2 WITHVALUES", []string{"*2", "*2", "$1", "f", "$1", "v", "*2", "$1", "f", "$1", "v"}},
		{"HRANDFIELD h -2", []string{"*2", "$1", "f", "$1", "f"}},
		{"HRANDFIELD nokey 1 WITHVALUES", []string{"*0"}},
		{"HRANDFIELD nokey", []string{"_"}},
		{"CONFIG GET maxclients", []string{"%1", "$10", "maxclients", "$5", "10000"}},
		{"CONFIG GET nosuch", []string{"%0"}},
		{"PUBSUB NUMSUB a", []string{"*2", "$1", "a", ":0"}},
		{"UNSUBSCRIBE", []string{">3", "$11", "unsubscribe", "_", ":0"}},
		{"PUNSUBSCRIBE p", []string{">3", "$12", "punsubscribe", "$1", "p", ":0"}},
		{"MEMORY USAGE nokey", []string{"_"}},
		{"COMMAND INFO nope", []string{"*1", "_"}},
		{"COMMAND INFO hget", []string{"*1", "*10", "$4", "hget", ":3", "~1", "+readonly", ":1", ":1", ":1",
			"~2", "+@hash", "+@read", "~0", "~0", "~0"}},
		{"COMMAND DOCS ping", []string{"%1", "$4", "ping", "%5", "$7", "summary", "$41", "Returns the server's liveliness response.",
			"$5", "since", "$5", "1.0.0", "$5", "group", "$10", "connection", "$10", "complexity", "$4", "O(1)",
			"$9", "arguments", "*1", "%3", "$4", "name", "$7", "message", "$4", "type", "$6", "string",
			"$5", "flags", "~1", "+optional"}},
		{"INFO keyspace", []string{"=48", "txt:# Keyspace", "db0:keys=1,expires=0,avg_ttl=0", ""}},
		{"ECHO x", []string{"$1", "x"}},
		{"PING", []string{"+PONG"}},
		{"HELLO", []string{"%7"}},
	} {
		r.send(tc.cmd + "\r\n")
		for _, w := range tc.want {
			require.Equal(t, w, r.line(), tc.cmd)
		}
	}
	r.helloRest()
	r.send("CLIENT INFO\r\n")
	head := r.line()
	require.True(t, strings.HasPrefix(head, "="), head)
	text := r.line()
	assert.True(t, strings.HasPrefix(text, "txt:id="), text)
	assert.Contains(t, text, " resp=3 ")
	assert.Equal(t, "", r.line()) // the line's \n, then the reply's \r\n

	// A watched key changed: EXEC's null is RESP3's.
	other := ts.client(t)
	r.send("WATCH h\r\n")
	r.expect("+OK")
	require.NoError(t, other.HSet(context.Background(), "h", "f", "w").Err())
	r.send("MULTI\r\nHGET h f\r\nEXEC\r\n")
	r.expect("+OK", "+QUEUED", "_")

	r.send("RESET\r\nHGET h nope\r\nHELLO 3\r\n")
	r.expect("+RESET", "$-1", "%7")
	r.helloRest()
	r.send("HELLO 2\r\n")
	r.expect("*14")
	r.helloRest()
	r.send("HGET h nope\r\nHMGET h nope\r\n")
	r.expect("$-1", "*1", "$-1")
	r.send("HELLO 4\r\nHGET h nope\r\n")
	r.expect("-NOPROTO unsupported protocol version", "$-1")
}

// A RESP3 subscriber gets its events as pushes, and may run any command
// while subscribed (in RESP2 only the pub/sub commands, PING, QUIT and
// RESET): the replies and the pushes share the socket whole, each in one
// piece, and the replies keep their order.
func TestRESP3Subscriber(t *testing.T) {
	ts := start(t, Config{})
	r := ts.raw(t)
	r.hello3()
	r.send("SUBSCRIBE kv:created\r\nPSUBSCRIBE kv:*ed\r\n")
	r.expect(">3", "$9", "subscribe", "$10", "kv:created", ":1", ">3", "$10", "psubscribe", "$6", "kv:*ed", ":2")
	ctx := context.Background()
	writer := ts.client(t)
	require.NoError(t, writer.HSet(ctx, "first", "f", "v").Err())
	msg := `{"event":"created","bucket":"first","bucket_base64":"Zmlyc3Q=","id":`
	r.expect(">3", "$7", "message", "$10", "kv:created")
	require.Contains(t, r.line(), "$")
	assert.True(t, strings.HasPrefix(r.line(), msg))
	r.expect(">4", "$8", "pmessage", "$6", "kv:*ed", "$10", "kv:created")
	require.Contains(t, r.line(), "$")
	assert.True(t, strings.HasPrefix(r.line(), msg))
	r.send("HGET first f\r\nPING\r\nPING hi\r\nHGET first nope\r\n")
	r.expect("$1", "v", "+PONG", "$2", "hi", "_")

	// Events arrive while the subscriber's commands run: read as RESP3,
	// every value is whole, the replies come in order, and every event
	// comes.
	const events, commands = 200, 400
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range events {
			assert.NoError(t, writer.HSet(ctx, "b"+strconv.Itoa(i), "f", "v").Err())
		}
	})
	wg.Go(func() {
		for i := range commands {
			r.send("ECHO " + strconv.Itoa(i) + "\r\n")
		}
	})
	rd := &resp3Reader{r: r.rd}
	require.NoError(t, r.nc.SetReadDeadline(time.Now().Add(30*time.Second)))
	created, patterned, replies := 0, 0, 0
	for replies < commands || created < events || patterned < events {
		v, push, err := rd.value()
		require.NoError(t, err)
		if !push {
			require.Equal(t, strconv.Itoa(replies), v, "the replies keep their order")
			replies++
			continue
		}
		parts := v.([]any)
		switch parts[0] {
		case "message":
			require.Len(t, parts, 3)
			created++
		case "pmessage":
			require.Len(t, parts, 4)
			patterned++
		default:
			t.Fatalf("unexpected push %v", parts)
		}
	}
	wg.Wait()

	// Its protocol stays while it is subscribed: events framed before a
	// switch could reach it after HELLO's reply.
	r.send("HELLO 2\r\nHGET first nope\r\n")
	r.expect("-ERR HELLO cannot change the protocol of a subscribed client: UNSUBSCRIBE first", "_")

	r.send("UNSUBSCRIBE\r\nPUNSUBSCRIBE\r\nHGET first f\r\n")
	r.expect(">3", "$11", "unsubscribe", "$10", "kv:created", ":1", ">3", "$12", "punsubscribe", "$6", "kv:*ed", ":0", "$1", "v")
}

// go-redis speaks RESP3 by default: it connects with HELLO 3 (no NOPROTO,
// no error counted), and its commands, its transactions and its pub/sub
// read kv's RESP3 replies.
func TestRESP3GoRedis(t *testing.T) {
	ts := start(t, Config{Observer: discardObserver{}})
	ctx := context.Background()
	rc := ts.client(t, func(o *redis.Options) { o.Protocol = 3 })
	require.NoError(t, rc.HSet(ctx, "h", "a", "1", "b", "2").Err())
	assert.Equal(t, map[string]string{"a": "1", "b": "2"}, rc.HGetAll(ctx, "h").Val())
	assert.Equal(t, []any{"1", nil}, rc.HMGet(ctx, "h", "a", "nope").Val())
	assert.ErrorIs(t, rc.HGet(ctx, "h", "nope").Err(), redis.Nil)
	pairs, err := rc.HRandFieldWithValues(ctx, "h", 2).Result()
	require.NoError(t, err)
	assert.ElementsMatch(t, []redis.KeyValue{{Key: "a", Value: "1"}, {Key: "b", Value: "2"}}, pairs)
	assert.Equal(t, map[string]string{"maxclients": "10000"}, rc.ConfigGet(ctx, "maxclients").Val())
	assert.Contains(t, rc.Info(ctx, "server").Val(), "redis_version:")
	proto, err := rc.Do(ctx, "HELLO").Result()
	require.NoError(t, err)
	assert.Equal(t, int64(3), proto.(map[any]any)["proto"])

	assert.NotContains(t, rc.Info(ctx, "errorstats").Val(), "NOPROTO", "go-redis's HELLO 3 is no error now")

	other := ts.client(t)
	err = rc.Watch(ctx, func(tx *redis.Tx) error {
		require.NoError(t, other.HSet(ctx, "h", "a", "changed").Err())
		_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HGet(ctx, "h", "a")
			return nil
		})
		return err
	}, "h")
	assert.ErrorIs(t, err, redis.TxFailedErr)

	ps := rc.Subscribe(ctx, "kv:created")
	defer ps.Close()
	_, err = ps.ReceiveTimeout(ctx, 10*time.Second)
	require.NoError(t, err)
	require.NoError(t, other.HSet(ctx, "fresh", "f", "v").Err())
	m, err := ps.ReceiveMessage(ctx)
	require.NoError(t, err)
	assert.Equal(t, "kv:created", m.Channel)
	assert.Contains(t, m.Payload, `"bucket":"fresh"`)
}

// hello3 switches r to RESP3 and reads HELLO's reply (a map: %7 ... up to
// modules' empty array).
func (r *raw) hello3() {
	r.t.Helper()
	r.send("HELLO 3\r\n")
	r.expect("%7")
	r.helloRest()
}

// helloRest reads the rest of HELLO's reply, up to modules' empty array.
func (r *raw) helloRest() {
	r.t.Helper()
	for r.line() != "*0" {
	}
}

// resp3Reader reads RESP3 values: scalars as strings (nil for null),
// aggregates as []any (a map's keys and values in turn); push reports a
// push (>).
type resp3Reader struct{ r *bufio.Reader }

func (rd *resp3Reader) line() (string, error) {
	l, err := rd.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	if !strings.HasSuffix(l, "\r\n") {
		return "", fmt.Errorf("line without \\r\\n: %q", l)
	}
	return l[:len(l)-2], nil
}

func (rd *resp3Reader) value() (v any, push bool, err error) {
	l, err := rd.line()
	if err != nil {
		return nil, false, err
	}
	if l == "" {
		return nil, false, errors.New("empty line")
	}
	switch typ, rest := l[0], l[1:]; typ {
	case '+', ':', ',', '#':
		return rest, false, nil
	case '-':
		return nil, false, errors.New(rest)
	case '_':
		return nil, false, nil
	case '$', '=':
		n, err := strconv.Atoi(rest)
		if err != nil || n < 0 {
			return nil, false, fmt.Errorf("bad length %q", l)
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(rd.r, b); err != nil {
			return nil, false, err
		}
		if string(b[n:]) != "\r\n" {
			return nil, false, fmt.Errorf("%q: not ended by \\r\\n", b)
		}
		return string(b[:n]), false, nil
	case '*', '~', '%', '>':
		n, err := strconv.Atoi(rest)
		if err != nil || n < 0 {
			return nil, false, fmt.Errorf("bad length %q", l)
		}
		if typ == '%' {
			n *= 2
		}
		items := make([]any, n)
		for i := range items {
			if items[i], _, err = rd.value(); err != nil {
				return nil, false, err
			}
		}
		return items, typ == '>', nil
	}
	return nil, false, fmt.Errorf("unknown type %q", l)
}

// A RESP3 subscriber's write that waits for the disk does not hold its
// events back: the reply waits, the events go on; also when a SUBSCRIBE
// or an UNSUBSCRIBE follows the write in its pipeline.
func TestRESP3SubscriberEventsPassAWriteWaitingForTheDisk(t *testing.T) {
	faults := &store.Faults{}
	ds := startDurable(t, t.TempDir(), faultyAlways(faults), func(c *Config) { c.EnableDebugCommand = true })
	ctx := context.Background()
	other := ds.client(t)
	r := ds.raw(t)
	r.hello3()
	r.send("SUBSCRIBE kv:exited\r\n")
	r.expect(">3", "$9", "subscribe", "$9", "kv:exited", ":1")
	for i, tc := range []struct {
		then string   // after the write, in the same pipeline
		want []string // its reply, once the disk is back
	}{
		{"", nil},
		{"SUBSCRIBE more\r\n", []string{">3", "$9", "subscribe", "$4", "more", ":2"}},
		{"UNSUBSCRIBE more\r\n", []string{">3", "$11", "unsubscribe", "$4", "more", ":1"}},
	} {
		victim, key := "victim"+strconv.Itoa(i), "mine"+strconv.Itoa(i)
		require.NoError(t, other.HSet(ctx, victim, "f", "v").Err())
		resume := faults.Stall()
		defer resume() // on a failure, lets the store close (resume is idempotent)
		r.send("HSET " + key + " f v\r\n" + tc.then)
		require.Eventually(t, func() bool { // the write is in memory, its reply waits for the disk
			n, err := other.HExists(ctx, key, "f").Result()
			return err == nil && n
		}, 10*time.Second, time.Millisecond)
		require.NoError(t, other.Do(ctx, "DEBUG", "CRASH-BUCKET", victim).Err())
		r.expect(">3", "$7", "message", "$9", "kv:exited")
		require.Contains(t, r.line(), "$")
		assert.Contains(t, r.line(), `"bucket":"`+victim+`"`, "the event comes while the write waits (%q)", tc.then)
		resume()
		r.expect(":1")
		r.expect(tc.want...)
	}
}

// A RESP3 subscriber's commands are isolated from the transactions of
// the other clients, and its own transactions from their commands, as a
// client's that is not subscribed: a subscriber reads a counter that
// transactions raise by 500 only at multiples of 500, and its own
// transactions, which raise another counter by 500, are never seen half
// done by another client.
func TestRESP3SubscriberTransactionsIsolated(t *testing.T) {
	for _, mode := range servingModes {
		t.Run(mode.name, func(t *testing.T) {
			ts := start(t, Config{GoroutinePerClient: mode.goroutinePerClient})
			ctx := context.Background()
			one := func(o *redis.Options) { o.PoolSize = 1 }
			writer, reader := ts.client(t, one), ts.client(t, one)
			sub := ts.raw(t)
			sub.hello3()
			sub.send("SUBSCRIBE nothing\r\n")
			sub.expect(">3", "$9", "subscribe", "$7", "nothing", ":1")

			const step, rounds = 500, 10
			var tx strings.Builder
			tx.WriteString("MULTI\r\n")
			for range step {
				tx.WriteString("HINCRBY s n 1\r\n")
			}
			tx.WriteString("EXEC\r\n")
			done := make(chan error, 2)
			go func() { // the others' transactions, read by the subscriber
				for range rounds {
					if _, err := writer.TxPipelined(ctx, func(p redis.Pipeliner) error {
						for range step {
							p.HIncrBy(ctx, "c", "n", 1)
						}
						return nil
					}); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			go func() { // the subscriber's transactions, read by another client
				for {
					v, err := reader.HGet(ctx, "s", "n").Int()
					switch {
					case err == redis.Nil:
						continue
					case err != nil:
						done <- err
						return
					case v%step != 0:
						done <- fmt.Errorf("a read saw the subscriber's transaction half done: %d", v)
						return
					case v == step*rounds:
						done <- nil
						return
					}
				}
			}()
			rd := &resp3Reader{r: sub.rd}
			require.NoError(t, sub.nc.SetReadDeadline(time.Now().Add(60*time.Second)))
			for i := range rounds {
				sub.send(tx.String())
				for range step + 2 { // +OK, the QUEUEDs, EXEC's reply
					_, _, err := rd.value()
					require.NoError(t, err, "round %d", i)
				}
				for range 20 {
					sub.send("HGET c n\r\n")
					v, _, err := rd.value()
					require.NoError(t, err)
					if v == nil {
						continue
					}
					n, err := strconv.Atoi(v.(string))
					require.NoError(t, err)
					require.Zero(t, n%step, "the subscriber saw a transaction half done: %d", n)
				}
			}
			for range 2 {
				require.NoError(t, <-done)
			}
		})
	}
}

// A RESP3 subscriber's UNSUBSCRIBE queued in a transaction leaves its
// reply with EXEC's others: flushed in the middle of EXEC, the array was
// cut by the events that came meanwhile, and a write of the transaction
// waited for the disk under the transaction's hold on the store's
// writes, which only the end of EXEC releases: the client never got its
// replies, and every other client waited behind the transaction.
func TestRESP3SubscriberUnsubscribesInATransaction(t *testing.T) {
	ds := startDurable(t, t.TempDir(), store.Options{Fsync: store.FsyncAlways})
	sub := ds.raw(t)
	sub.hello3()
	sub.send("SUBSCRIBE ch other\r\n")
	sub.expect(">3", "$9", "subscribe", "$2", "ch", ":1", ">3", "$9", "subscribe", "$5", "other", ":2")
	sub.send("MULTI\r\nHSET k f v\r\nUNSUBSCRIBE ch\r\nUNSUBSCRIBE\r\nHGET k f\r\nEXEC\r\n")
	sub.expect("+OK", "+QUEUED", "+QUEUED", "+QUEUED", "+QUEUED", "*4", ":1",
		">3", "$11", "unsubscribe", "$2", "ch", ":1",
		">3", "$11", "unsubscribe", "$5", "other", ":0",
		"$1", "v")
	ctx := context.Background()
	assert.Equal(t, "v", ds.client(t).HGet(ctx, "k", "f").Val(), "the others are served")
}

// SMEMBERS of a missing key answers an empty set in RESP3 (~0), as Redis
// 7.0.15 does, and an empty array in RESP2; kv answered *0 in both.
func TestRESP3SmembersOfAMissingKeyIsASet(t *testing.T) {
	ts := start(t, Config{})
	r := ts.raw(t)
	r.send("SMEMBERS nokey\r\n")
	r.expect("*0")
	r.hello3()
	r.send("SMEMBERS nokey\r\nLRANGE nokey 0 -1\r\nZRANGE nokey 0 -1\r\n")
	r.expect("~0", "*0", "*0")
}
