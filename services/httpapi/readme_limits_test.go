package httpapi

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The defaults the README's HTTP section states: a change to one of them
// is a change to the README too.
func TestDefaultsAreTheREADMEs(t *testing.T) {
	cfg := Config{}.withDefaults()
	assert.Equal(t, int64(1<<20), cfg.MaxBodyBytes, "bodies: 1 MiB")
	assert.Equal(t, 64<<10, cfg.MaxHeaderBytes, "request line and headers: 64 KiB")
	assert.Equal(t, 1024, cfg.MaxConns, "connections: 1,024")
	assert.Equal(t, 512, cfg.MaxStreams, "event streams: half of the connections")
	assert.Equal(t, 5*time.Second, cfg.ReadHeaderTimeout)
	assert.Equal(t, 30*time.Second, cfg.ReadTimeout)
	assert.Equal(t, 30*time.Second, cfg.WriteTimeout)
	assert.Equal(t, 2*time.Minute, cfg.IdleTimeout)
	assert.Equal(t, 256, cfg.SSEBuffer, "a stream's queue: 256 events")
	assert.Equal(t, 10*time.Second, cfg.SSEWriteTimeout, "a stream's write: 10 s")
	assert.Equal(t, 100, DefaultPageLimit)
	assert.Equal(t, 1000, MaxPageLimit)

	// And the server the API runs is given them.
	servers := make(chan *http.Server, 1)
	a := serve(t, tree(t), Config{}, func(s *Server) {
		h := s.handler
		s.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case servers <- r.Context().Value(http.ServerContextKey).(*http.Server):
			default:
			}
			h.ServeHTTP(w, r)
		})
	})
	require.Equal(t, http.StatusOK, a.do("GET", "/healthz", nil).status)
	hs := <-servers
	assert.Equal(t, 5*time.Second, hs.ReadHeaderTimeout)
	assert.Equal(t, 30*time.Second, hs.ReadTimeout)
	assert.Equal(t, 30*time.Second, hs.WriteTimeout)
	assert.Equal(t, 2*time.Minute, hs.IdleTimeout)
	assert.Equal(t, 64<<10, hs.MaxHeaderBytes)
}

// The request line and headers may take 64 KiB and the 4 KiB net/http
// allows over it; past 68 KiB, 431.
func TestHeadersPastTheLimitGet431(t *testing.T) {
	a := start(t, Config{})
	get := func(size int) int {
		t.Helper()
		nc, err := net.Dial("tcp", a.addr)
		require.NoError(t, err)
		defer nc.Close()
		head := "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: "
		tail := "\r\n\r\n"
		_, err = fmt.Fprintf(nc, "%s%s%s", head, strings.Repeat("a", size-len(head)-len(tail)), tail)
		require.NoError(t, err)
		res, err := http.ReadResponse(bufio.NewReader(nc), nil)
		require.NoError(t, err)
		res.Body.Close()
		return res.StatusCode
	}
	assert.Equal(t, http.StatusOK, get(64<<10))
	assert.Equal(t, http.StatusOK, get(68<<10))
	assert.Equal(t, http.StatusRequestHeaderFieldsTooLarge, get(68<<10+1))
}

// A limit over 1000 is cut to 1000, for the list of buckets and for a
// bucket's pages alike: with more than 1000 of each, a page holds 1000.
func TestLimitPastTheMaximumIsCut(t *testing.T) {
	a := start(t, Config{})
	ctx := context.Background()
	reg := a.root.Registry()
	b, err := reg.Create(ctx, "h")
	require.NoError(t, err)
	for i := range MaxPageLimit + 1 {
		_, err := reg.Create(ctx, fmt.Sprintf("b%04d", i))
		require.NoError(t, err)
		require.NoError(t, b.Put(fmt.Sprintf("k%04d", i), []byte("v")))
	}
	for _, limit := range []string{"1001", "5000"} {
		m := a.do("GET", "/v1/buckets?limit="+limit, nil).json(t)
		assert.Equal(t, MaxPageLimit, len(m["buckets"].([]any)), "limit %s", limit)
		assert.NotEmpty(t, m["next_cursor"], "limit %s", limit)

		m = a.do("GET", bucketPath("h")+"?limit="+limit, nil).json(t)
		assert.Equal(t, MaxPageLimit, len(m["pairs"].([]any)), "limit %s", limit)
		assert.NotEmpty(t, m["next_cursor"], "limit %s", limit)
	}
	m := a.do("GET", "/v1/buckets", nil).json(t)
	assert.Equal(t, DefaultPageLimit, len(m["buckets"].([]any)), "no limit: 100 names")
	m = a.do("GET", bucketPath("h"), nil).json(t)
	assert.Equal(t, MaxPageLimit+1, len(m["pairs"].([]any)), "no limit and no cursor: every pair")
}
