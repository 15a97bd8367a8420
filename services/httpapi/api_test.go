package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/services"
)

func TestBucketAndKeyRoutes(t *testing.T) {
	a := start(t, Config{})
	reg := a.root.Registry()

	require.Equal(t, http.StatusNoContent, a.do("PUT", bucketPath("shopping"), nil).status)
	require.Equal(t, http.StatusNoContent, a.do("PUT", bucketPath("shopping"), nil).status) // idempotent
	b, ok := reg.Lookup("shopping")
	require.True(t, ok)

	require.Equal(t, http.StatusNoContent, a.do("PUT", keyPath("shopping", "milk"), strings.NewReader("1")).status)
	require.Equal(t, http.StatusNoContent, a.do("PUT", keyPath("shopping", "eggs"), strings.NewReader("3")).status)
	binary := []byte{0, 1, 2, 0xff, '\r', '\n'}
	require.Equal(t, http.StatusNoContent, a.do("PUT", keyPath("shopping", "bin"), bytes.NewReader(binary)).status)
	require.Equal(t, http.StatusNoContent, a.do("PUT", keyPath("shopping", "empty"), nil).status)
	v, err := b.Get("milk")
	require.NoError(t, err)
	require.Equal(t, "1", string(v))

	r := a.do("GET", keyPath("shopping", "bin"), nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "application/octet-stream", r.header.Get("Content-Type"))
	assert.Equal(t, string(binary), r.body)
	r = a.do("GET", keyPath("shopping", "empty"), nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Empty(t, r.body)

	r = a.do("GET", bucketPath("shopping"), nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.JSONEq(t, `{
		"name": "shopping", "name_base64": "c2hvcHBpbmc=",
		"pairs": [
			{"key": "bin", "key_base64": "Ymlu", "value_base64": "AAEC/w0K"},
			{"key": "eggs", "key_base64": "ZWdncw==", "value_base64": "Mw=="},
			{"key": "empty", "key_base64": "ZW1wdHk=", "value_base64": ""},
			{"key": "milk", "key_base64": "bWlsaw==", "value_base64": "MQ=="}
		]}`, r.body)

	require.Equal(t, http.StatusNoContent, a.do("DELETE", keyPath("shopping", "eggs"), nil).status)
	expectError(t, a.do("GET", keyPath("shopping", "eggs"), nil), http.StatusNotFound, "key_not_found")
	expectError(t, a.do("DELETE", keyPath("shopping", "eggs"), nil), http.StatusNotFound, "key_not_found")

	require.Equal(t, http.StatusNoContent, a.do("DELETE", bucketPath("shopping"), nil).status)
	_, ok = reg.Lookup("shopping")
	require.False(t, ok)
	for _, r := range []reply{
		a.do("DELETE", bucketPath("shopping"), nil),
		a.do("GET", bucketPath("shopping"), nil),
		a.do("GET", keyPath("shopping", "milk"), nil),
		a.do("PUT", keyPath("shopping", "milk"), strings.NewReader("2")),
		a.do("DELETE", keyPath("shopping", "milk"), nil),
	} {
		expectError(t, r, http.StatusNotFound, "bucket_not_found")
	}

	r = a.do("GET", bucketPath("empty"), nil)
	expectError(t, r, http.StatusNotFound, "bucket_not_found")
	require.Equal(t, http.StatusNoContent, a.do("PUT", bucketPath("empty"), nil).status)
	r = a.do("GET", bucketPath("empty"), nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.JSONEq(t, `{"name": "empty", "name_base64": "ZW1wdHk=", "pairs": []}`, r.body)
}

func TestOddNamesAndKeys(t *testing.T) {
	a := start(t, Config{})
	reg := a.root.Registry()
	odd := []string{
		"a/b", "/", "//", ".", "..", "../x", "%", "%2F", "sp ace", "tab\t", "\x00\xff\xfe",
		"\r\n", "ü", "?q=1#frag", "+plus", "semi;colon", strings.Repeat("é", 100),
	}
	for i, name := range odd {
		t.Run(fmt.Sprintf("%d", i), func(t *testing.T) {
			require.Equal(t, http.StatusNoContent, a.do("PUT", bucketPath(name), nil).status)
			b, ok := reg.Lookup(name)
			require.True(t, ok, "bucket %q", name)
			for _, key := range odd {
				r := a.do("PUT", keyPath(name, key), strings.NewReader("v:"+key))
				require.Equal(t, http.StatusNoContent, r.status, "key %q: %s", key, r.body)
				v, err := b.Get(key)
				require.NoError(t, err, "key %q", key)
				require.Equal(t, "v:"+key, string(v))
				r = a.do("GET", keyPath(name, key), nil)
				require.Equal(t, http.StatusOK, r.status)
				require.Equal(t, "v:"+key, r.body)
			}
			dump := a.do("GET", bucketPath(name), nil).json(t)
			got, err := base64.StdEncoding.DecodeString(dump["name_base64"].(string))
			require.NoError(t, err)
			require.Equal(t, name, string(got))
			require.Len(t, dump["pairs"], len(odd))
			for _, p := range dump["pairs"].([]any) {
				pm := p.(map[string]any)
				k, err := base64.StdEncoding.DecodeString(pm["key_base64"].(string))
				require.NoError(t, err)
				v, err := base64.StdEncoding.DecodeString(pm["value_base64"].(string))
				require.NoError(t, err)
				require.Equal(t, "v:"+string(k), string(v))
			}
			require.Equal(t, http.StatusNoContent, a.do("DELETE", keyPath(name, odd[0]), nil).status)
			_, err = b.Get(odd[0])
			require.Error(t, err)
		})
	}
	// The listing gives every name back exactly.
	var listed []string
	for _, ref := range a.do("GET", "/v1/buckets?limit=1000", nil).json(t)["buckets"].([]any) {
		n, err := base64.StdEncoding.DecodeString(ref.(map[string]any)["name_base64"].(string))
		require.NoError(t, err)
		listed = append(listed, string(n))
	}
	want := slices.Clone(odd)
	slices.Sort(want)
	require.Equal(t, want, listed)

	// A literal dot segment is refused, neither a key nor a redirect (see
	// TestDotSegmentNeverReachesAnotherResource).
	req, err := http.NewRequest("GET", a.base+"/v1/buckets/a/keys/..", nil)
	require.NoError(t, err)
	resp, err := (&http.Client{Transport: a.client.Transport, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}).Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
}

func TestListPagination(t *testing.T) {
	a := start(t, Config{})
	ctx := context.Background()
	reg := a.root.Registry()
	var all []string
	for i := range 25 {
		name := fmt.Sprintf("b%02d", i)
		all = append(all, name)
		_, err := reg.Create(ctx, name)
		require.NoError(t, err)
	}
	page := func(query string) ([]string, string) {
		t.Helper()
		r := a.do("GET", "/v1/buckets"+query, nil)
		require.Equal(t, http.StatusOK, r.status, r.body)
		m := r.json(t)
		var names []string
		for _, ref := range m["buckets"].([]any) {
			names = append(names, ref.(map[string]any)["name"].(string))
		}
		cursor, _ := m["next_cursor"].(string)
		return names, cursor
	}

	names, cursor := page("")
	require.Equal(t, all, names) // 25 fit in the default limit of 100
	require.Empty(t, cursor)

	names, cursor = page("?limit=10")
	require.Equal(t, all[:10], names)
	require.NotEmpty(t, cursor)
	// Changes between pages: the cursor stays valid.
	require.NoError(t, reg.Delete(ctx, "b09")) // the cursor's own name
	require.NoError(t, reg.Delete(ctx, "b10"))
	_, err := reg.Create(ctx, "b105")
	require.NoError(t, err)
	names, cursor = page("?limit=10&cursor=" + cursor)
	require.Equal(t, []string{"b105", "b11", "b12", "b13", "b14", "b15", "b16", "b17", "b18", "b19"}, names)
	names, cursor = page("?limit=10&cursor=" + cursor)
	require.Equal(t, all[20:], names)
	require.Empty(t, cursor)

	names, _ = page("?limit=100000") // cut to the maximum
	require.Len(t, names, 24)
	names, _ = page("?limit=99999999999999999999") // past int64 too
	require.Len(t, names, 24)

	for _, q := range []string{"?limit=0", "?limit=-1", "?limit=x"} {
		expectError(t, a.do("GET", "/v1/buckets"+q, nil), http.StatusBadRequest, "bad_limit")
	}
	expectError(t, a.do("GET", "/v1/buckets?cursor=%25%25", nil), http.StatusBadRequest, "bad_cursor")
}

func TestErrorCodes(t *testing.T) {
	a := start(t, Config{MaxBodyBytes: 16})
	require.Equal(t, http.StatusNoContent, a.do("PUT", bucketPath("b"), nil).status)

	expectError(t, a.do("GET", "/nowhere", nil), http.StatusNotFound, "not_found")
	expectError(t, a.do("GET", "/v1/buckets/b/keys", nil), http.StatusNotFound, "not_found")
	r := a.do("POST", "/v1/buckets/b", nil)
	expectError(t, r, http.StatusMethodNotAllowed, "method_not_allowed")
	assert.Equal(t, "DELETE, GET, HEAD, PUT", r.header.Get("Allow"))

	// The same for a segment that is exactly %2F, which ServeMux cannot route.
	r = a.do("POST", bucketPath("/")+"/keys/"+esc("/"), nil)
	expectError(t, r, http.StatusMethodNotAllowed, "method_not_allowed")
	assert.Equal(t, "DELETE, GET, HEAD, PUT", r.header.Get("Allow"))

	expectError(t, a.do("PUT", bucketPath(strings.Repeat("n", 4097)), nil), http.StatusBadRequest, "invalid_name")

	// Bodies: at the limit, past it with a Content-Length, past it chunked.
	require.Equal(t, http.StatusNoContent, a.do("PUT", keyPath("b", "k"), strings.NewReader(strings.Repeat("x", 16))).status)
	expectError(t, a.do("PUT", keyPath("b", "k"), strings.NewReader(strings.Repeat("x", 17))), http.StatusRequestEntityTooLarge, "body_too_large")
	chunked := io.MultiReader(strings.NewReader(strings.Repeat("y", 10)), strings.NewReader(strings.Repeat("y", 10)))
	expectError(t, a.do("PUT", keyPath("b", "k"), chunked), http.StatusRequestEntityTooLarge, "body_too_large")
	require.Equal(t, strings.Repeat("x", 16), a.do("GET", keyPath("b", "k"), nil).body) // unchanged
}

func TestUnavailableWhenTheTreeStops(t *testing.T) {
	root := services.New(services.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	errc := root.ServeBackground(ctx)
	a := serve(t, root, Config{})
	require.Equal(t, http.StatusNoContent, a.do("PUT", bucketPath("b"), nil).status)
	cancel()
	<-errc
	expectError(t, a.do("PUT", bucketPath("c"), nil), http.StatusServiceUnavailable, "unavailable")
	expectError(t, a.do("GET", "/v1/events", nil), http.StatusServiceUnavailable, "unavailable")
	expectError(t, a.do("GET", keyPath("b", "k"), nil), http.StatusNotFound, "bucket_not_found")
}

func TestAuth(t *testing.T) {
	a := start(t, Config{Password: "s3cret"})
	for _, path := range []string{"/v1/buckets", bucketPath("b"), "/metrics", "/readyz", "/v1/openapi.json", "/v1/events", "/nowhere"} {
		r := a.do("GET", path, nil)
		expectError(t, r, http.StatusUnauthorized, "unauthorized")
		assert.Equal(t, `Bearer realm="kv"`, r.header.Get("WWW-Authenticate"))
	}
	require.Equal(t, http.StatusOK, a.do("GET", "/healthz", nil).status)

	a.token = "s3cre"
	expectError(t, a.do("PUT", bucketPath("b"), nil), http.StatusUnauthorized, "unauthorized")
	a.token = "s3cret!"
	expectError(t, a.do("PUT", bucketPath("b"), nil), http.StatusUnauthorized, "unauthorized")
	_, ok := a.root.Registry().Lookup("b")
	require.False(t, ok)

	a.token = "s3cret"
	require.Equal(t, http.StatusNoContent, a.do("PUT", bucketPath("b"), nil).status)
	require.Equal(t, http.StatusOK, a.do("GET", "/metrics", nil).status)
	require.Equal(t, http.StatusOK, a.do("GET", "/readyz", nil).status)
	expectError(t, a.do("GET", "/nowhere", nil), http.StatusNotFound, "not_found")
	a.events() // the stream opens with the token

	// The scheme is required (a bare password is not a bearer token), in
	// any case (scheme names are case-insensitive).
	for header, want := range map[string]int{
		"s3cret":         http.StatusUnauthorized,
		"Basic s3cret":   http.StatusUnauthorized,
		"bearer s3cret":  http.StatusOK,
		"BEARER s3cret":  http.StatusOK,
		"Bearer  s3cret": http.StatusOK, // one or more spaces (RFC 9110)
		"Bearer":         http.StatusUnauthorized,
		"Bearer ":        http.StatusUnauthorized,
	} {
		req, err := http.NewRequest("GET", a.base+"/v1/buckets", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", header)
		resp, err := a.client.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, want, resp.StatusCode, "Authorization: %s", header)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	root := tree(t)
	var notReady error = errors.New("registry not serving")
	a := serve(t, root, Config{Ready: func() error { return notReady }})
	r := a.do("GET", "/healthz", nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.JSONEq(t, `{"status":"ok"}`, r.body)
	r = a.do("GET", "/readyz", nil)
	require.Equal(t, http.StatusServiceUnavailable, r.status)
	assert.JSONEq(t, `{"status":"not ready","error":"registry not serving","code":"not_ready"}`, r.body)

	b := serve(t, root, Config{}) // no Ready: ready
	r = b.do("GET", "/readyz", nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.JSONEq(t, `{"status":"ready"}`, r.body)
}

func TestHandlerWithRecorder(t *testing.T) {
	root := tree(t)
	s := New(Config{Registry: root.Registry(), Events: root.Events()})
	assert.Equal(t, "kv http api", s.String())
	assert.Nil(t, s.Addr())
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("PUT", "/v1/buckets/x%2Fy", nil)
	req.Host = "localhost:8080" // not httptest's example.com: no password
	s.Handler().ServeHTTP(rec, req)
	require.Equal(t, http.StatusNoContent, rec.Code)
	_, ok := root.Registry().Lookup("x/y")
	require.True(t, ok)
	rec = httptest.NewRecorder()
	req = httptest.NewRequest("GET", "/v1/openapi.json", nil)
	req.Host = "127.0.0.1"
	s.Handler().ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, openAPIDocument, rec.Body.Bytes())
}

func TestNewNeedsRegistryAndEvents(t *testing.T) {
	require.Panics(t, func() { New(Config{}) })
}

// The empty key is a key like any other: /v1/buckets/{bucket}/keys/ names it.
func TestEmptyKey(t *testing.T) {
	a := start(t, Config{})
	for _, name := range []string{"b", "/"} {
		require.Equal(t, http.StatusNoContent, a.do("PUT", bucketPath(name), nil).status)
		b, ok := a.root.Registry().Lookup(name)
		require.True(t, ok)

		expectError(t, a.do("GET", keyPath(name, ""), nil), http.StatusNotFound, "key_not_found")
		require.Equal(t, http.StatusNoContent, a.do("PUT", keyPath(name, ""), strings.NewReader("empty")).status)
		v, err := b.Get("")
		require.NoError(t, err)
		assert.Equal(t, "empty", string(v))
		r := a.do("GET", keyPath(name, ""), nil)
		require.Equal(t, http.StatusOK, r.status)
		assert.Equal(t, "empty", r.body)
		require.Equal(t, http.StatusNoContent, a.do("DELETE", keyPath(name, ""), nil).status)
		_, err = b.Get("")
		assert.Error(t, err)
		expectError(t, a.do("DELETE", keyPath(name, ""), nil), http.StatusNotFound, "key_not_found")
	}
	// Without the trailing slash there is still no such route.
	expectError(t, a.do("GET", "/v1/buckets/b/keys", nil), http.StatusNotFound, "not_found")
}

// GET /v1/buckets/{bucket} pages its pairs with limit and cursor, in the
// order HSCAN walks, each page O(log n + limit); without either it returns
// every pair, sorted by key.
func TestGetBucketPages(t *testing.T) {
	a := start(t, Config{})
	ctx := context.Background()
	b, err := a.root.Registry().Create(ctx, "h")
	require.NoError(t, err)
	var all []string
	for i := range 250 {
		k := fmt.Sprintf("k%03d", i)
		all = append(all, k)
		require.NoError(t, b.Put(k, []byte(k)))
	}
	all = append(all, "") // the empty field: its page must not end the walk
	require.NoError(t, b.Put("", []byte("")))
	slices.Sort(all)
	page := func(query string) ([]string, string) {
		t.Helper()
		r := a.do("GET", bucketPath("h")+query, nil)
		require.Equal(t, http.StatusOK, r.status, r.body)
		m := r.json(t)
		var keys []string
		for _, p := range m["pairs"].([]any) {
			p := p.(map[string]any)
			v, err := base64.StdEncoding.DecodeString(p["value_base64"].(string))
			require.NoError(t, err)
			require.Equal(t, p["key"], string(v))
			keys = append(keys, p["key"].(string))
		}
		cursor, _ := m["next_cursor"].(string)
		return keys, cursor
	}

	keys, cursor := page("")
	require.Equal(t, all, keys, "no limit and no cursor: every pair, sorted")
	require.Empty(t, cursor)

	for _, limit := range []int{1, 7, 60, 1000} {
		var walked []string
		cursor := "0"
		for {
			keys, next := page(fmt.Sprintf("?limit=%d&cursor=%s", limit, cursor))
			require.LessOrEqual(t, len(keys), limit)
			walked = append(walked, keys...)
			if next == "" {
				break
			}
			cursor = next
		}
		assert.ElementsMatch(t, all, walked, "limit %d: every key exactly once", limit)
	}

	// Writes between pages: a key there for the whole walk comes once.
	var walked []string
	keys, cursor = page("?limit=50")
	walked = append(walked, keys...)
	require.NoError(t, b.Put("new", []byte("new")))
	_, err = b.Delete("k100")
	require.NoError(t, err)
	for cursor != "" {
		keys, cursor = page("?limit=50&cursor=" + cursor)
		walked = append(walked, keys...)
	}
	for _, k := range all {
		if k != "k100" {
			assert.Equal(t, 1, countOf(walked, k), "key %q", k)
		}
	}

	keys, next := page("?cursor=0")
	assert.Len(t, keys, DefaultPageLimit, "a cursor alone: the default page")
	assert.NotEmpty(t, next)
	keys, _ = page("?limit=99999999999999999999")
	assert.Len(t, keys, len(all), "a limit past the maximum is cut to it (1000: all 251 keys)")

	for _, q := range []string{"?limit=0", "?limit=x", "?limit=-1"} {
		expectError(t, a.do("GET", bucketPath("h")+q, nil), http.StatusBadRequest, "bad_limit")
	}
	for _, q := range []string{"?cursor=x", "?cursor=-1"} {
		expectError(t, a.do("GET", bucketPath("h")+q, nil), http.StatusBadRequest, "bad_cursor")
	}
}

func countOf(s []string, v string) (n int) {
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}

// A request whose bucket ends between its lookup and its use (a crash)
// follows the name to the bucket it leads to then: with a store, the same
// pairs, loaded back. It does not answer 404 for a bucket that exists.
func TestRequestFollowsABucketThatEndedUnderIt(t *testing.T) {
	data, err := services.OpenDataDir(t.TempDir(), services.DataDirOptions{Fsync: services.FsyncAlways})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, data.Close()) })
	root := services.New(services.Config{DataDir: data})
	ctx, cancel := context.WithCancel(context.Background())
	errc := root.ServeBackground(ctx)
	t.Cleanup(func() { cancel(); <-errc })
	b, err := root.Registry().Create(ctx, "b")
	require.NoError(t, err)
	require.NoError(t, b.Put("k", []byte("v")))

	var crashes atomic.Int32 // how many of the next lookups find a bucket that then crashes
	a := serve(t, root, Config{}, func(s *Server) {
		s.testHookLookup = func(b *bucket.Bucket) {
			if crashes.Add(-1) >= 0 {
				b.Stop(errors.New("crashed under the request"))
			}
		}
	})
	for _, tc := range []struct {
		method, path string
		body         string
		crashes      int32 // PUT looks up once more, before it reads the body
		status       int
	}{
		{"GET", keyPath("b", "k"), "", 1, http.StatusOK},
		{"PUT", keyPath("b", "k2"), "v2", 2, http.StatusNoContent},
		{"GET", bucketPath("b"), "", 1, http.StatusOK},
		{"DELETE", keyPath("b", "k2"), "", 1, http.StatusNoContent},
	} {
		crashes.Store(tc.crashes)
		r := a.do(tc.method, tc.path, strings.NewReader(tc.body))
		require.Equal(t, tc.status, r.status, "%s %s: %s", tc.method, tc.path, r.body)
	}
	r := a.do("GET", keyPath("b", "k"), nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "v", string(r.body))
}

// request sends method path with the headers, as a browser would, and
// returns the status and the error code of the reply.
func (a *api) request(method, path string, header map[string]string) (status int, code string) {
	a.t.Helper()
	req, err := http.NewRequest(method, a.base+path, nil)
	require.NoError(a.t, err)
	for k, v := range header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := a.client.Do(req)
	require.NoError(a.t, err)
	defer resp.Body.Close()
	var body errorBody
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body.Code
}

// A web page that rebinds its own name to 127.0.0.1 (DNS rebinding) makes
// the browser send that name as Host: without a password, only requests
// addressed to an IP address or to localhost are answered.
func TestOnlyLocalHostsWithoutPassword(t *testing.T) {
	a := start(t, Config{})
	for host, want := range map[string]int{
		"127.0.0.1":            http.StatusOK,
		"127.0.0.1:8080":       http.StatusOK,
		"[::1]:8080":           http.StatusOK,
		"[::1]":                http.StatusOK,
		"10.1.2.3:80":          http.StatusOK,
		"localhost":            http.StatusOK,
		"LocalHost:8080":       http.StatusOK,
		"kv.localhost:8080":    http.StatusOK,
		"localhost.:8080":      http.StatusOK,
		"127.0.0.1.":           http.StatusOK,
		"[fe80::1%eth0]:8080":  http.StatusOK,
		"evil.example":         http.StatusForbidden,
		"evil.example:8080":    http.StatusForbidden,
		"localhost.evil.com":   http.StatusForbidden,
		"127.0.0.1.nip.io:800": http.StatusForbidden,
	} {
		status, code := a.request("GET", "/v1/buckets", map[string]string{"Host": host})
		require.Equal(t, want, status, "Host: %s", host)
		if want == http.StatusForbidden {
			require.Equal(t, "host_not_allowed", code)
		}
	}
	status, _ := a.request("PUT", bucketPath("b"), map[string]string{"Host": "evil.example"})
	require.Equal(t, http.StatusForbidden, status)
	_, ok := a.root.Registry().Lookup("b")
	require.False(t, ok)

	// A password is what lets kv answer a name: the page does not know it.
	p := start(t, Config{Password: "s3cret"})
	p.token = "s3cret"
	status, _ = p.request("PUT", bucketPath("b"), map[string]string{"Host": "kv.example:8080", "Authorization": "Bearer s3cret"})
	require.Equal(t, http.StatusNoContent, status)
}

// A page may send a cross-origin PUT, POST or DELETE without asking first;
// such requests are refused, by the Origin or Sec-Fetch-Site header a
// browser adds, with or without a password. Reads and same-origin writes
// go through.
func TestCrossOriginWritesAreRefused(t *testing.T) {
	for _, password := range []string{"", "s3cret"} {
		a := start(t, Config{Password: password})
		auth := map[string]string{}
		if password != "" {
			auth["Authorization"] = "Bearer " + password
		}
		with := func(h map[string]string) map[string]string {
			out := map[string]string{}
			maps.Copy(out, auth)
			maps.Copy(out, h)
			return out
		}
		for _, tc := range []struct {
			method, path string
			header       map[string]string
			want         int
		}{
			{"PUT", bucketPath("b"), map[string]string{"Origin": "http://evil.example"}, http.StatusForbidden},
			{"PUT", bucketPath("b"), map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
			{"POST", "/v1/save", map[string]string{"Origin": "null"}, http.StatusForbidden},
			{"DELETE", bucketPath("b"), map[string]string{"Sec-Fetch-Site": "same-site"}, http.StatusForbidden},
			{"GET", "/v1/buckets", map[string]string{"Origin": "http://evil.example"}, http.StatusOK},
			{"PUT", bucketPath("b"), map[string]string{"Sec-Fetch-Site": "same-origin"}, http.StatusNoContent},
			{"PUT", bucketPath("c"), map[string]string{"Origin": "http://" + a.addr}, http.StatusNoContent},
			{"PUT", bucketPath("d"), nil, http.StatusNoContent}, // curl, go-redis's peers: no browser headers
		} {
			status, code := a.request(tc.method, tc.path, with(tc.header))
			require.Equal(t, tc.want, status, "password %q: %s %s %v", password, tc.method, tc.path, tc.header)
			if tc.want == http.StatusForbidden {
				require.Equal(t, "cross_origin", code)
			}
		}
	}
}

// A client that fails to authenticate is answered 401 and its connection
// closed: it cannot hold one of the MaxConns connections for the idle
// timeout.
func TestUnauthorizedClosesTheConnection(t *testing.T) {
	a := start(t, Config{Password: "s3cret", MaxConns: 1})
	for range 3 {
		nc, err := net.Dial("tcp", a.addr)
		require.NoError(t, err)
		_, err = io.WriteString(nc, "GET /v1/buckets HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
		require.NoError(t, err)
		require.NoError(t, nc.SetReadDeadline(time.Now().Add(10*time.Second)))
		resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		require.True(t, resp.Close, "Connection: close")
		_, err = io.ReadAll(resp.Body)
		require.NoError(t, err)
		_, err = nc.Read(make([]byte, 1))
		require.ErrorIs(t, err, io.EOF, "the server closed the connection")
		nc.Close()
	}
	status, _ := a.request("GET", "/v1/buckets", map[string]string{"Authorization": "Bearer s3cret"})
	require.Equal(t, http.StatusOK, status)
}
