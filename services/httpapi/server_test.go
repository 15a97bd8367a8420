package httpapi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/thejerf/suture/v4"

	"github.com/kvproject/kv/bucket"
)

func TestServeOnAddr(t *testing.T) {
	root := tree(t)
	srv := New(Config{Addr: "127.0.0.1:0", Registry: root.Registry(), Events: root.Events()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	require.Eventually(t, func() bool { return srv.Addr() != nil }, 10*time.Second, time.Millisecond)

	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	a := &api{t: t, root: root, srv: srv, base: "http://" + srv.Addr().String(), client: client}
	require.Equal(t, http.StatusOK, a.do("GET", "/healthz", nil).status)
	s := a.events()

	// Another server cannot take the address: an error for suture to retry.
	busy := New(Config{Addr: srv.Addr().String(), Registry: root.Registry(), Events: root.Events()})
	require.Error(t, busy.Serve(ctx))

	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	assert.Nil(t, srv.Addr())
	_, _, err := s.next()
	require.Error(t, err, "the stream ended with the server")
}

// lookupSignal is a registry that reports each lookup of name.
type lookupSignal struct {
	Registry
	name string
	ch   chan struct{}
}

func (l lookupSignal) LookupCurrent(ctx context.Context, name string) (*bucket.Bucket, bool, error) {
	if name == l.name {
		select {
		case l.ch <- struct{}{}:
		default:
		}
	}
	return l.Registry.LookupCurrent(ctx, name)
}

func TestGracefulStop(t *testing.T) {
	root := tree(t)
	_, err := root.Registry().Create(context.Background(), "b")
	require.NoError(t, err)
	looked := make(chan struct{}, 1)
	a, cancel, done := serveUntil(t, root, Config{Registry: lookupSignal{root.Registry(), "b", looked}})
	s := a.events()

	// A PUT whose body is half sent: its handler is running.
	nc, err := net.Dial("tcp", a.addr)
	require.NoError(t, err)
	defer nc.Close()
	_, err = io.WriteString(nc, "PUT /v1/buckets/b/keys/k HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\n12345")
	require.NoError(t, err)
	<-looked

	cancel()
	_, _, err = s.next() // the stream ends as soon as the shutdown begins
	require.ErrorIs(t, err, io.EOF)

	// The PUT still completes.
	_, err = io.WriteString(nc, "67890")
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	require.ErrorIs(t, <-done, context.Canceled)
	b, _ := root.Registry().Lookup("b")
	v, err := b.Get("k")
	require.NoError(t, err)
	require.Equal(t, "1234567890", string(v))
}

// breakingListener accepts open connections, then fails its Accept once
// broken is closed.
type breakingListener struct {
	net.Listener
	open   atomic.Int32
	broken chan struct{}
}

// ReplaceableByPlain lets a restart listen plain in its stead.
func (l *breakingListener) ReplaceableByPlain() {}

func (l *breakingListener) Accept() (net.Conn, error) {
	if l.open.Add(-1) >= 0 {
		return l.Listener.Accept()
	}
	<-l.broken
	return nil, errors.New("listener broke")
}

func TestServeTakesListenerThenListensAgain(t *testing.T) {
	root := tree(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	bl := &breakingListener{Listener: ln, broken: make(chan struct{})}
	srv := New(Config{Listener: bl, Registry: root.Registry(), Events: root.Events()})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	first := make(chan error, 1)
	go func() { first <- srv.Serve(ctx) }()
	require.Eventually(t, func() bool { return srv.Addr() != nil }, 10*time.Second, time.Millisecond)
	close(bl.broken)
	require.ErrorContains(t, <-first, "listener broke")

	second := make(chan error, 1)
	go func() { second <- srv.Serve(ctx) }()
	require.Eventually(t, func() bool { return srv.Addr() != nil }, 10*time.Second, time.Millisecond)
	require.Equal(t, ln.Addr().String(), srv.Addr().String(), "the same address again")
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	a := &api{t: t, root: root, srv: srv, base: "http://" + srv.Addr().String(), client: client}
	require.Equal(t, http.StatusOK, a.do("GET", "/healthz", nil).status)
	cancel()
	require.ErrorIs(t, <-second, context.Canceled)
}

func TestNegativeSettingsMeanDefaults(t *testing.T) {
	cfg := Config{
		MaxBodyBytes: -1, MaxHeaderBytes: -1, MaxConns: -1, ShutdownTimeout: -1,
		SSEBuffer: -1, SSEWriteTimeout: -1, SSEHeartbeat: -1, ReadTimeout: -1,
	}.withDefaults()
	assert.Equal(t, int64(DefaultMaxBodyBytes), cfg.MaxBodyBytes)
	assert.Equal(t, DefaultMaxHeaderBytes, cfg.MaxHeaderBytes)
	assert.Equal(t, DefaultMaxConns, cfg.MaxConns)
	assert.Equal(t, DefaultShutdownTimeout, cfg.ShutdownTimeout)
	assert.Equal(t, DefaultSSEBuffer, cfg.SSEBuffer)
	assert.Equal(t, DefaultSSEWriteTimeout, cfg.SSEWriteTimeout)
	assert.Equal(t, DefaultSSEHeartbeat, cfg.SSEHeartbeat)
	assert.Equal(t, time.Duration(-1), cfg.ReadTimeout, "http.Server reads it as no timeout")
	assert.Equal(t, DefaultReadHeaderTimeout, cfg.ReadHeaderTimeout)
}

// firstNames cuts the same pages as sorting every name would, and paging
// through with the last name as cursor returns every name once.
func TestFirstNamesMatchesSorting(t *testing.T) {
	rnd := rand.New(rand.NewPCG(5, 6))
	for _, size := range []int{0, 1, 7, 300} {
		set := map[string]bool{}
		for len(set) < size {
			set[fmt.Sprintf("b%d", rnd.IntN(100000))] = true
		}
		names := make([]string, 0, size)
		for n := range set {
			names = append(names, n)
		}
		sorted := append([]string{}, slices.Sorted(maps.Keys(set))...)
		for _, limit := range []int{1, 3, 100, 1000} {
			var got []string
			after, hasAfter := "", false
			for {
				page, more := firstNames(slices.Clone(names), after, hasAfter, limit)
				i := len(got)
				require.Equal(t, append([]string{}, sorted[i:min(i+limit, len(sorted))]...), append([]string{}, page...))
				require.Equal(t, i+limit < len(sorted), more)
				got = append(got, page...)
				if !more {
					break
				}
				after, hasAfter = page[len(page)-1], true
			}
			require.Equal(t, sorted, append([]string{}, got...))
		}
	}
}

// A server whose listener fails stops its requests as at a stop, and
// returns: an open event stream does not hold it (suture can then restart
// it).
func TestListenerFailureEndsOpenStreams(t *testing.T) {
	root := tree(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	bl := &breakingListener{Listener: ln, broken: make(chan struct{})}
	bl.open.Store(1) // the event stream's
	srv := New(Config{Listener: bl, Registry: root.Registry(), Events: root.Events()})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	require.Eventually(t, func() bool { return srv.Addr() != nil }, 10*time.Second, time.Millisecond)
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	a := &api{t: t, root: root, srv: srv, base: "http://" + ln.Addr().String(), client: client}
	s := a.events()
	close(bl.broken)
	select {
	case err := <-served:
		require.ErrorContains(t, err, "listener broke")
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return after its listener failed: an open event stream holds it")
	}
	for { // the stream ended
		if _, _, err := s.next(); err != nil {
			break
		}
	}
}

func TestCheckPassword(t *testing.T) {
	for pw, ok := range map[string]bool{
		"s3cret": true, "two words": true, "tab\tinside": true, "\xff\xfe": true, "": true,
		" lead": false, "trail ": false, "\ttab": false, "tab\t": false, "new\nline": false, "nul\x00": false, "del\x7f": false,
	} {
		err := CheckPassword(pw)
		assert.Equal(t, ok, err == nil, "%q: %v", pw, err)
	}
	// Serve refuses one, for good.
	root := tree(t)
	s := New(Config{Registry: root.Registry(), Events: root.Events(), Password: "abc ", Addr: "127.0.0.1:0"})
	err := s.Serve(context.Background())
	require.ErrorIs(t, err, suture.ErrDoNotRestart)
}

// panickyCreate is a registry whose Create of "boom" panics: a stand-in
// for a bug that crashes a request while it holds the registry's TxLock.
type panickyCreate struct{ Registry }

func (p panickyCreate) Create(ctx context.Context, name string) (*bucket.Bucket, error) {
	if name == "boom" {
		panic("create exploded")
	}
	return p.Registry.Create(ctx, name)
}

// A request that crashes under the TxLock (net/http recovers the panic)
// releases the lock, so that a Redis EXEC, which takes it alone, does not
// wait for ever (and every client of every front end behind it).
func TestCrashedRequestReleasesTxLock(t *testing.T) {
	root := tree(t)
	a := serve(t, root, Config{Registry: panickyCreate{root.Registry()}})
	req, err := http.NewRequest(http.MethodPut, a.base+bucketPath("boom"), nil)
	require.NoError(t, err)
	if res, err := a.client.Do(req); err == nil { // the connection is closed without a reply
		res.Body.Close()
		t.Fatalf("a reply to a crashed request: %s", res.Status)
	}
	tx := root.Registry().TxLock()
	require.Eventually(t, func() bool {
		if !tx.TryLock() {
			return false
		}
		tx.Unlock()
		return true
	}, 10*time.Second, 10*time.Millisecond, "the crashed request still holds the TxLock")
	assert.Equal(t, http.StatusNoContent, a.do(http.MethodPut, bucketPath("b"), nil).status)
}
