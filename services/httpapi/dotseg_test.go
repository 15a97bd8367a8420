package httpapi

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A client that escapes a key with url.PathEscape (or JavaScript's
// encodeURIComponent) sends "." and ".." as they are. The mux cleans such a
// path and redirects with 307, which keeps the method and body: an
// ordinary client that follows it then works on another resource.
func TestDotSegmentNeverReachesAnotherResource(t *testing.T) {
	a := start(t, Config{})
	require.Equal(t, http.StatusNoContent, a.do("PUT", bucketPath("b"), nil).status)
	require.Equal(t, http.StatusNoContent, a.do("PUT", keyPath("b", ""), strings.NewReader("empty key")).status)
	require.Equal(t, http.StatusNoContent, a.do("PUT", keyPath("b", "k"), strings.NewReader("precious")).status)

	for _, tc := range []struct{ method, path, body string }{
		{"PUT", "/v1/buckets/b/keys/" + url.PathEscape("."), "EVIL"},
		{"DELETE", "/v1/buckets/b/keys/" + url.PathEscape("."), ""},
		{"PUT", "/v1/buckets/b/keys/k/..", "EVIL"},
		{"DELETE", "/v1/buckets/b//keys/k", ""},
		{"PUT", "/v1/buckets/b/keys//k", "EVIL"},
		{"GET", "/v1/buckets/b/keys/" + url.PathEscape("."), ""},
	} {
		var body io.Reader
		if tc.body != "" {
			body = strings.NewReader(tc.body)
		}
		r := a.do(tc.method, tc.path, body) // following redirects
		expectError(t, r, http.StatusBadRequest, "bad_path")
		assert.Empty(t, r.header.Get("Location"), "%s %s", tc.method, tc.path)
	}
	// Nothing else was touched.
	r := a.do("GET", keyPath("b", ""), nil)
	require.Equal(t, http.StatusOK, r.status, "bucket b is gone")
	assert.Equal(t, "empty key", r.body)
	r = a.do("GET", keyPath("b", "k"), nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "precious", r.body)
}
