package httpapi

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rawRequest sends target byte for byte as the request-target, as curl
// does with what its user typed, and returns the reply's status.
func (a *api) rawRequest(method, target, body string) int {
	a.t.Helper()
	c, err := net.Dial("tcp", a.addr)
	require.NoError(a.t, err)
	defer c.Close()
	_, err = fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		method, target, len(body), body)
	require.NoError(a.t, err)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(a.t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// A %2F in a name is part of the name, whatever else the request-target
// holds. net/http accepts a request-target with a character RFC 3986 wants
// escaped ('|', '^', '{', '"', a raw UTF-8 byte: curl sends them as
// typed); url.URL then drops RawPath, EscapedPath re-escapes the decoded
// Path, and every %2F turns into a path separator. A request for the bucket
// "a/keys/k|" is then routed as one for the key "k|" of the bucket "a":
// PUT overwrites that key, DELETE deletes it, GET reads it.
func TestEncodedSlashStaysInTheNameBesideARawCharacter(t *testing.T) {
	for _, tc := range []struct {
		method, target, body string
	}{
		{"PUT", "/v1/buckets/a%2Fkeys%2Fk|", "EVIL"},
		{"DELETE", "/v1/buckets/a%2Fkeys%2Fk|", ""},
		{"GET", "/v1/buckets/a%2Fkeys%2Fk|", ""},
		{"PUT", "/v1/buckets/a%2Fkeys%2Fk^", "EVIL"},
		{"DELETE", "/v1/buckets/a%2Fkeys%2Fk{", ""},
		{"DELETE", "/v1/buckets/a%2Fkeys%2Fk\xc3\xa9", ""},
	} {
		t.Run(tc.method+" "+tc.target, func(t *testing.T) {
			a := start(t, Config{})
			key := strings.TrimPrefix(tc.target, "/v1/buckets/a%2Fkeys%2F")
			require.Equal(t, http.StatusNoContent, a.do("PUT", bucketPath("a"), nil).status)
			require.Equal(t, http.StatusNoContent, a.do("PUT", keyPath("a", key), strings.NewReader("precious")).status)

			status := a.rawRequest(tc.method, tc.target, tc.body)

			// The request names the bucket "a/keys/<key>", not the key of "a".
			got := a.do("GET", keyPath("a", key), nil)
			assert.Equal(t, http.StatusOK, got.status, "the key %q of bucket \"a\" is gone", key)
			assert.Equal(t, "precious", got.body, "the key %q of bucket \"a\" was overwritten", key)
			if tc.method == "GET" {
				assert.NotEqual(t, http.StatusOK, status, "GET of a bucket that does not exist answered with another bucket's value")
			}
			if tc.method == "PUT" {
				// Created as named, or refused: never another resource.
				if status == http.StatusNoContent {
					_, ok := a.root.Registry().Lookup("a/keys/" + key)
					assert.True(t, ok, "204 but no bucket %q", "a/keys/"+key)
				}
			}
		})
	}
}
