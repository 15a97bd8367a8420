package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path"
	"strings"
	"testing"

	"github.com/kvproject/kv/services"
)

// FuzzHandler sends arbitrary requests (a method, a request target with
// its query, a body) through the API's handler, as net/http would hand
// them over: no panic, no 500, every error reply a JSON error body with
// its code, and the pair of a bucket the request does not name untouched.
func FuzzHandler(f *testing.F) {
	for _, s := range []struct{ method, target, body string }{
		{"GET", "/v1/buckets", ""},
		{"GET", "/v1/buckets?limit=2&after=a", ""},
		{"GET", "/v1/buckets?limit=-1", ""},
		{"GET", "/v1/buckets?limit=99999999999999999999&after=%ff", ""},
		{"PUT", "/v1/buckets/cart", ""},
		{"PUT", "/v1/buckets/cart/keys/eggs", "12"},
		{"GET", "/v1/buckets/cart/keys/eggs", ""},
		{"GET", "/v1/buckets/cart?limit=1&after=eggs", ""},
		{"DELETE", "/v1/buckets/cart/keys/eggs", ""},
		{"DELETE", "/v1/buckets/cart", ""},
		{"PUT", "/v1/buckets/%00%ff/keys/%2F", "\x00"},
		{"POST", "/v1/buckets/cart", "{}"},
		{"PATCH", "/v1/buckets/cart/keys/x", "y"},
		{"GET", "/v1/buckets//keys/x", ""},
		{"POST", "/v1/save", ""},
		{"GET", "/v1/openapi.json", ""},
		{"GET", "/metrics", ""},
		{"GET", "/healthz", ""},
		{"GET", "/readyz", ""},
		{"GET", "/nowhere", ""},
		{"OPTIONS", "*", ""},
	} {
		f.Add(s.method, s.target, []byte(s.body))
	}
	root := services.New(services.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	errc := root.ServeBackground(ctx)
	f.Cleanup(func() { cancel(); <-errc })
	reg := root.Registry()
	srv := New(Config{Registry: reg, Events: root.Events(), MaxBodyBytes: 1 << 16})
	h := srv.Handler()
	const sentinel = "fuzz-sentinel"
	b, err := reg.Create(ctx, sentinel)
	if err != nil {
		f.Fatal(err)
	}
	if err := b.Put("k", []byte("v")); err != nil {
		f.Fatal(err)
	}

	f.Fuzz(func(t *testing.T, method, target string, body []byte) {
		req, err := http.NewRequestWithContext(ctx, method, "http://kv"+target, bytes.NewReader(body))
		if err != nil || !strings.HasPrefix(target, "/") && target != "*" {
			return // net/http's server would not hand this over
		}
		req.RequestURI = target
		if clean := path.Clean(req.URL.Path); clean == "/v1/events" {
			return // a stream, which runs until its client leaves: tested apart
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		if rec.Code >= 500 && !(rec.Code == http.StatusServiceUnavailable && path.Clean(req.URL.Path) == "/v1/save") {
			t.Fatalf("%s %q: %d %s", method, target, rec.Code, rec.Body)
		}
		if rec.Code >= 400 && rec.Header().Get("Content-Type") == "application/json" {
			var e errorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Code == "" || e.Error == "" {
				t.Fatalf("%s %q: %d with error body %q (%v)", method, target, rec.Code, rec.Body, err)
			}
		}
		// Only a request that names the sentinel may change it.
		if strings.Contains(req.URL.Path, sentinel) {
			if cur, ok := reg.Lookup(sentinel); ok {
				_ = cur.Put("k", []byte("v"))
			} else if b, err := reg.Create(ctx, sentinel); err == nil {
				_ = b.Put("k", []byte("v"))
			}
			return
		}
		cur, ok := reg.Lookup(sentinel)
		if !ok {
			t.Fatalf("%s %q: the sentinel bucket is gone", method, target)
		}
		if v, err := cur.Get("k"); err != nil || string(v) != "v" {
			t.Fatalf("%s %q: the sentinel's pair is now %q (%v)", method, target, v, err)
		}
	})
}
