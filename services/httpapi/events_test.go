package httpapi

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/internal/testlog"
	"github.com/kvproject/kv/services"
)

func TestEventStream(t *testing.T) {
	a := start(t, Config{})
	s := a.events()
	ctx := context.Background()
	reg := a.root.Registry()

	require.Equal(t, http.StatusNoContent, a.do("PUT", bucketPath("shopping"), nil).status)
	require.Equal(t, http.StatusNoContent, a.do("DELETE", bucketPath("shopping"), nil).status)
	_, err := reg.Create(ctx, "odd\x00\xff")
	require.NoError(t, err)
	b, err := reg.Create(ctx, "crash")
	require.NoError(t, err)
	require.Error(t, b.Update(func(*bucket.Tx) error { panic("boom") }))

	created := s.expect()
	require.Equal(t, "created", created.event)
	first, err := strconv.ParseUint(created.id, 10, 64)
	require.NoError(t, err)
	assert.Equal(t, map[string]any{
		"seq": float64(first), "type": "created", "bucket": "shopping",
		"bucket_base64": "c2hvcHBpbmc=", "id": created.data["id"],
	}, created.data)

	exited := s.expect()
	assert.Equal(t, strconv.FormatUint(first+1, 10), exited.id)
	assert.Equal(t, "exited", exited.event)
	assert.Equal(t, map[string]any{
		"seq": float64(first + 1), "type": "exited", "bucket": "shopping",
		"bucket_base64": "c2hvcHBpbmc=", "id": created.data["id"], "reason": "normal",
	}, exited.data)

	odd := s.expect()
	assert.Equal(t, strconv.FormatUint(first+2, 10), odd.id)
	assert.Equal(t, "created", odd.event)
	assert.Equal(t, "b2RkAP8=", odd.data["bucket_base64"]) // exact bytes

	crashCreated := s.expect()
	assert.Equal(t, strconv.FormatUint(first+3, 10), crashCreated.id)
	crashExited := s.expect()
	assert.Equal(t, strconv.FormatUint(first+4, 10), crashExited.id)
	assert.Equal(t, "exited", crashExited.event)
	assert.Equal(t, "crash", crashExited.data["bucket"])
	assert.Equal(t, "panic", crashExited.data["reason"])
	assert.Contains(t, crashExited.data["error"], "boom")
}

func TestEventStreamEndsWhenTheTreeStops(t *testing.T) {
	root := services.New(services.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	errc := root.ServeBackground(ctx)
	a := serve(t, root, Config{})
	s := a.events()
	_, err := root.Registry().Create(ctx, "survivor")
	require.NoError(t, err)
	cancel()
	<-errc
	// Created, then the Exited the stop published, then the end.
	assert.Equal(t, "created", s.expect().event)
	ev := s.expect()
	assert.Equal(t, "exited", ev.event)
	assert.Equal(t, "shutdown", ev.data["reason"])
	_, _, err = s.next()
	require.ErrorIs(t, err, io.EOF)
}

func TestEventStreamEndsWhenTheServerStops(t *testing.T) {
	root := tree(t)
	a, cancel, done := serveUntil(t, root, Config{})
	s := a.events()
	cancel()
	require.ErrorIs(t, <-done, context.Canceled) // did not wait for the stream to end on its own
	_, _, err := s.next()
	require.Error(t, err)
	require.Zero(t, root.Events().Stats().Subscribers, "the stream's subscription ended")
}

func TestSlowStreamIsCut(t *testing.T) {
	root := tree(t)
	release := make(chan struct{})
	var once sync.Once
	a := serve(t, root, Config{SSEBuffer: 2}, func(s *Server) {
		// The stream stalls before writing its first event, as a client
		// that stops reading stalls it once the socket buffers are full.
		s.testHookSSE = func() { once.Do(func() { <-release }) }
	})
	s := a.events()
	ctx := context.Background()
	reg := root.Registry()
	const n = 20
	for i := range n {
		_, err := reg.Create(ctx, fmt.Sprintf("b%02d", i)) // never waits for the stream
		require.NoError(t, err)
	}
	close(release)

	var got []sseEvent
	for {
		ev, _, err := s.next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		got = append(got, ev)
	}
	require.NotEmpty(t, got)
	last := got[len(got)-1]
	require.Equal(t, "overflow", last.event, "the stream ends with an overflow notice")
	require.Less(t, len(got)-1, n, "the stalled stream lost events")
	for i, ev := range got[:len(got)-1] {
		require.Equal(t, "created", ev.event)
		require.Equal(t, fmt.Sprintf("b%02d", i), ev.data["bucket"], "in order, from the first")
	}
	if len(got) > 1 {
		prev := got[len(got)-2]
		assert.Equal(t, prev.data["seq"], last.data["last_seq"])
	}
	// The cut stream's subscription is gone; the tree is untouched.
	require.Eventually(t, func() bool { return root.Events().Stats().Subscribers == 0 }, 10*time.Second, time.Millisecond)
	require.Equal(t, n, root.Registry().Len())
}

func TestStreamOutlivesServerTimeouts(t *testing.T) {
	a := start(t, Config{
		ReadTimeout:  20 * time.Millisecond,
		WriteTimeout: 20 * time.Millisecond,
		SSEHeartbeat: 10 * time.Millisecond,
	})
	s := a.events()
	// Wait, by the stream's own clock, well past both timeouts.
	pings := 0
	for pings < 10 {
		line, err := s.r.ReadString('\n')
		require.NoError(t, err)
		if line == ": ping\n" {
			pings++
		}
	}
	_, err := a.root.Registry().Create(context.Background(), "late")
	require.NoError(t, err)
	ev, _, err := s.next()
	require.NoError(t, err)
	assert.Equal(t, "late", ev.data["bucket"])
}

func TestStalledReaderIsCutByWriteTimeout(t *testing.T) {
	root := tree(t)
	var logs testlog.Buffer
	a := serve(t, root, Config{SSEBuffer: 1 << 16, SSEWriteTimeout: 50 * time.Millisecond, Logger: logs.Logger(slog.LevelInfo)})
	openStalledStream(t, root, a.base[len("http://"):])

	// The client never reads: once the socket buffers are full, a write
	// blocks past SSEWriteTimeout and the stream is cut. Publishers go on.
	ctx := context.Background()
	reg := root.Registry()
	name := strings.Repeat("n", 4000)
	for i := 0; root.Events().Stats().Subscribers == 1; i++ {
		require.Less(t, i, 100000, "the stalled stream was never cut")
		_, err := reg.Create(ctx, name)
		require.NoError(t, err)
		require.NoError(t, reg.Delete(ctx, name))
	}
	assert.Zero(t, root.Events().Stats().Dropped, "cut for its write, not for a full queue")
	// Logged as a slow client is, where a client that went away is a
	// debug record.
	assert.Contains(t, logs.String(), `level=WARN msg="http api: event stream client took nothing in time; ending it"`)
}

// A stream that lost an event writes none after it: the events before the
// gap, then the overflow notice, whose last_seq is the last one written.
// The stream stalls once, then, while it catches up, more are published.
func TestStreamWritesNoEventPastALostOne(t *testing.T) {
	root := tree(t)
	reg := root.Registry()
	ctx := context.Background()
	for trial := range 30 {
		release := make(chan struct{})
		calls := 0
		a := serve(t, root, Config{SSEBuffer: 1}, func(s *Server) {
			s.testHookSSE = func() { // on the stream's goroutine only
				calls++
				switch calls {
				case 1:
					<-release
				case 2:
					_, err := reg.Create(ctx, fmt.Sprintf("t%d-late", trial))
					require.NoError(t, err)
				}
			}
		})
		s := a.events()
		for i := range 4 { // a queue of 1 overflows
			_, err := reg.Create(ctx, fmt.Sprintf("t%d-early%d", trial, i))
			require.NoError(t, err)
		}
		close(release)
		var ids []uint64
		var overflow sseEvent
		for {
			ev, _, err := s.next()
			if err == io.EOF {
				break
			}
			require.NoError(t, err)
			if ev.event == "overflow" {
				overflow = ev
				continue
			}
			id, err := strconv.ParseUint(ev.id, 10, 64)
			require.NoError(t, err)
			ids = append(ids, id)
		}
		require.Equal(t, "overflow", overflow.event)
		for i := 1; i < len(ids); i++ {
			require.Equal(t, ids[i-1]+1, ids[i], "trial %d: event %d written after event %d was lost (ids %v)", trial, ids[i], ids[i-1]+1, ids)
		}
		if len(ids) > 0 {
			assert.EqualValues(t, ids[len(ids)-1], overflow.data["last_seq"])
		}
	}
}

// A stream that lost events and then sees the tree stop ends with the
// overflow notice, not a plain end: its client must hear of the gap.
func TestStreamThatLostEventsSaysSoWhenTheTreeStops(t *testing.T) {
	for trial := range 10 {
		root := services.New(services.Config{})
		ctx, cancel := context.WithCancel(context.Background())
		errc := root.ServeBackground(ctx)
		release := make(chan struct{})
		var once sync.Once
		a := serve(t, root, Config{SSEBuffer: 1}, func(s *Server) {
			s.testHookSSE = func() { once.Do(func() { <-release }) }
		})
		s := a.events()
		for i := range 4 {
			_, err := root.Registry().Create(ctx, fmt.Sprintf("b%d", i))
			require.NoError(t, err)
		}
		cancel()
		<-errc
		close(release)
		var got []string
		for {
			ev, _, err := s.next()
			if err == io.EOF {
				break
			}
			require.NoError(t, err)
			got = append(got, ev.event)
		}
		require.NotEmpty(t, got)
		require.Equal(t, "overflow", got[len(got)-1], "trial %d: %v", trial, got)
	}
}

// A stop ends every event stream at once, a stalled one too: a write
// waiting for a client that does not read does not hold the stop for
// ShutdownTimeout (nor, past it, make it close every other connection).
func TestStopDoesNotWaitForAStalledStream(t *testing.T) {
	root := tree(t)
	a, cancel, done := serveUntil(t, root, Config{SSEBuffer: 1 << 16, SSEWriteTimeout: time.Hour, ShutdownTimeout: time.Minute})
	openStalledStream(t, root, a.addr)

	// The client never reads: far more than the socket buffers hold.
	ctx := context.Background()
	reg := root.Registry()
	name := strings.Repeat("n", 4000)
	for range 2000 {
		_, err := reg.Create(ctx, name)
		require.NoError(t, err)
		require.NoError(t, reg.Delete(ctx, name))
	}
	require.Equal(t, 1, root.Events().Stats().Subscribers, "the stream is still there, stalled")

	begin := time.Now()
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	// A hang, not a speed: the stalled stream would hold the stop for
	// ShutdownTimeout, a minute.
	require.Less(t, time.Since(begin), 30*time.Second, "the stop waited for the stalled stream")
}

// openStalledStream opens an event stream on addr with a small receive
// buffer, over a raw connection that the test never reads (closed at the
// test's end), and waits until the stream has subscribed.
func openStalledStream(t *testing.T, root *services.Root, addr string) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { nc.Close() })
	require.NoError(t, nc.(*net.TCPConn).SetReadBuffer(4096))
	_, err = io.WriteString(nc, "GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return root.Events().Stats().Subscribers == 1 }, 10*time.Second, time.Millisecond)
}

// A host that serves Handler on its own http.Server: its Shutdown ends the
// event streams, as ServeListener's stop does, rather than waiting for
// them until its deadline (or for ever, with none).
func TestHostShutdownEndsEventStreams(t *testing.T) {
	root := tree(t)
	srv := New(Config{Registry: root.Registry(), Events: root.Events()})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	hs := &http.Server{Handler: srv.Handler()}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	t.Cleanup(func() { hs.Close() })
	client := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections)
	a := &api{t: t, root: root, srv: srv, addr: ln.Addr().String(), base: "http://" + ln.Addr().String(), client: client}
	s := a.events()

	// A hang, not a speed: a Shutdown that waited for the stream would
	// wait for ever (a stream never ends on its own).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, hs.Shutdown(ctx), "the host's Shutdown waited for the stream")
	require.ErrorIs(t, <-served, http.ErrServerClosed)
	_, _, err = s.next()
	require.ErrorIs(t, err, io.EOF)
}

// Event streams never end on their own: past MaxStreams (half of
// MaxConns by default) a new one gets 503 too_many_streams, so that the
// streams leave connections to the other requests. Before, 1,024 streams
// took every connection and /healthz went unanswered (a liveness probe
// would restart the daemon).
func TestEventStreamsLeaveConnectionsToOtherRequests(t *testing.T) {
	root := tree(t)
	var srv *Server
	a := serve(t, root, Config{MaxConns: 4}, func(s *Server) { srv = s })
	first := a.events()
	a.events()
	r := a.do("GET", "/v1/events", nil)
	expectError(t, r, http.StatusServiceUnavailable, "too_many_streams")
	assert.Equal(t, "1", r.header.Get("Retry-After"))
	assert.Equal(t, http.StatusOK, a.do("GET", "/healthz", nil).status, "a connection is left for the probe")
	// A stream that ends gives its place back.
	require.NoError(t, first.resp.Body.Close())
	require.Eventually(t, func() bool { return srv.streams.Load() == 1 }, 10*time.Second, time.Millisecond)
	a.events()
}

// With one connection (--http-max-conns 1, which fitting the caps to a
// low open-file limit can also give), half of it is none: every stream is
// refused, without a Retry-After that would never help, and the one
// connection stays for /healthz. Before, the default of at least one
// stream let a stream take it, and /healthz went unanswered.
func TestEventStreamsLeaveTheOnlyConnectionToOtherRequests(t *testing.T) {
	root := tree(t)
	a := serve(t, root, Config{MaxConns: 1})
	r := a.do("GET", "/v1/events", nil)
	expectError(t, r, http.StatusServiceUnavailable, "too_many_streams")
	assert.Empty(t, r.header.Get("Retry-After"), "no stream will ever be served")
	assert.Equal(t, http.StatusOK, a.do("GET", "/healthz", nil).status, "the connection is left for the probe")
}
