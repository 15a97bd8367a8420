package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kvproject/kv/services"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// tree serves a new kv tree until the end of the test.
func tree(t *testing.T) *services.Root {
	t.Helper()
	root := services.New(services.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	errc := root.ServeBackground(ctx)
	t.Cleanup(func() { cancel(); <-errc })
	return root
}

// api is a Server on a real listener, and a client for it.
type api struct {
	t      *testing.T
	root   *services.Root
	srv    *Server
	addr   string // host:port
	base   string
	client *http.Client
	token  string // sent as the bearer token when not empty
}

// serve runs a Server for cfg on root (Registry and Events default to
// root's) on 127.0.0.1:0 until the end of the test, when it must stop
// cleanly. prepare, if given, runs on the server before it serves.
func serve(t *testing.T, root *services.Root, cfg Config, prepare ...func(*Server)) *api {
	t.Helper()
	a, cancel, done := serveUntil(t, root, cfg, prepare...)
	t.Cleanup(func() {
		a.client.CloseIdleConnections()
		cancel()
		assert.ErrorIs(t, <-done, context.Canceled)
	})
	return a
}

// serveUntil is serve for a test that stops the server itself: cancel ends
// its context, and done gets what ServeListener returned. The server is
// stopped at the end of the test in any case.
func serveUntil(t *testing.T, root *services.Root, cfg Config, prepare ...func(*Server)) (a *api, cancel context.CancelFunc, done <-chan error) {
	t.Helper()
	if cfg.Registry == nil {
		cfg.Registry = root.Registry()
	}
	if cfg.Events == nil {
		cfg.Events = root.Events()
	}
	srv := New(cfg)
	for _, p := range prepare {
		p(srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.ServeListener(ctx, ln) }()
	client := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(func() {
		client.CloseIdleConnections()
		cancel()
	})
	addr := ln.Addr().String()
	return &api{t: t, root: root, srv: srv, addr: addr, base: "http://" + addr, client: client}, cancel, served
}

// start serves a new tree and an API with cfg on it.
func start(t *testing.T, cfg Config) *api {
	t.Helper()
	return serve(t, tree(t), cfg)
}

// esc percent-encodes every byte of s but letters, digits, '-', '_' and
// '~': '/' and '.' included, as the API asks of clients.
func esc(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '~':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func bucketPath(name string) string { return "/v1/buckets/" + esc(name) }

func keyPath(name, key string) string { return bucketPath(name) + "/keys/" + esc(key) }

// reply is a response read whole.
type reply struct {
	status int
	header http.Header
	body   string
}

// json decodes the body into a map.
func (r reply) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.body), &m), "body %q", r.body)
	return m
}

// do sends a request to the path (already escaped) and reads the reply.
func (a *api) do(method, path string, body io.Reader) reply {
	a.t.Helper()
	// A reply that never ends (a stream where none was expected) fails
	// the test rather than hanging it.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, body)
	require.NoError(a.t, err)
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.client.Do(req)
	require.NoError(a.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(a.t, err)
	return reply{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// expectError checks an error reply: its status, JSON content type and code.
func expectError(t *testing.T, r reply, status int, code string) {
	t.Helper()
	require.Equal(t, status, r.status, "body %q", r.body)
	assert.Equal(t, "application/json", r.header.Get("Content-Type"))
	assert.Equal(t, code, r.json(t)["code"], "body %q", r.body)
}

// sseEvent is one event read from a stream.
type sseEvent struct {
	id, event string
	data      map[string]any
}

// stream is an open GET /v1/events.
type stream struct {
	t    *testing.T
	resp *http.Response
	r    *bufio.Reader
}

// events opens the event stream, and waits for its opening comment, so the
// subscription exists when it returns.
func (a *api) events() *stream {
	a.t.Helper()
	// A bound on the whole stream: a test whose stream should have
	// ended fails with the context's error rather than hanging until the
	// test binary's timeout.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	a.t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, "GET", a.base+"/v1/events", nil)
	require.NoError(a.t, err)
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.client.Do(req)
	require.NoError(a.t, err)
	a.t.Cleanup(func() { resp.Body.Close() })
	require.Equal(a.t, http.StatusOK, resp.StatusCode)
	require.Equal(a.t, "text/event-stream", resp.Header.Get("Content-Type"))
	s := &stream{t: a.t, resp: resp, r: bufio.NewReader(resp.Body)}
	line, err := s.r.ReadString('\n')
	require.NoError(a.t, err)
	require.Equal(a.t, ": kv events\n", line)
	line, err = s.r.ReadString('\n')
	require.NoError(a.t, err)
	require.Equal(a.t, "\n", line)
	return s
}

// next reads the next event, skipping comments, or returns io.EOF when the
// stream ends. pings counts the comment blocks skipped.
func (s *stream) next() (ev sseEvent, pings int, err error) {
	for {
		var block []string
		for {
			line, err := s.r.ReadString('\n')
			if err != nil {
				return sseEvent{}, pings, err
			}
			line = strings.TrimSuffix(line, "\n")
			if line == "" {
				break
			}
			block = append(block, line)
		}
		if len(block) == 0 {
			continue // a stray blank line
		}
		if strings.HasPrefix(block[0], ":") {
			pings++
			continue
		}
		for _, l := range block {
			field, value, _ := strings.Cut(l, ": ")
			switch field {
			case "id":
				ev.id = value
			case "event":
				ev.event = value
			case "data":
				require.NoError(s.t, json.Unmarshal([]byte(value), &ev.data))
			default:
				s.t.Fatalf("unexpected line %q", l)
			}
		}
		return ev, pings, nil
	}
}

// expect reads the next event, which must exist.
func (s *stream) expect() sseEvent {
	s.t.Helper()
	ev, _, err := s.next()
	require.NoError(s.t, err)
	return ev
}
