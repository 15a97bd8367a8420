package httpapi

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// A client that shuts down its sending side once its request is out (nc
// -N, a shell script's socket, some proxies) still reads the reply; but
// net/http then cancels the request's context. DELETE passes that context
// to Registry.Delete, which gives up waiting with "context canceled" after
// it has stopped the bucket: the client hears 503 "could not be deleted
// now; try again" (and the server logs an error) for a bucket that is
// gone. A reply must say what happened.
func TestDeleteFromAHalfClosedClientSaysWhatHappened(t *testing.T) {
	a := start(t, Config{})
	reg := a.root.Registry()
	for i := range 200 {
		name := fmt.Sprintf("b%d", i)
		require.Equal(t, http.StatusNoContent, a.do("PUT", bucketPath(name), nil).status)

		c, err := net.Dial("tcp", a.addr)
		require.NoError(t, err)
		_, err = fmt.Fprintf(c, "DELETE %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", bucketPath(name))
		require.NoError(t, err)
		require.NoError(t, c.(*net.TCPConn).CloseWrite())
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err)
		resp.Body.Close()
		c.Close()

		_, stillThere := reg.Lookup(name)
		switch resp.StatusCode {
		case http.StatusNoContent:
			require.False(t, stillThere, "204, but %q is still there", name)
		default:
			require.True(t, stillThere, "attempt %d: %d (could not be deleted), but %q was deleted", i, resp.StatusCode, name)
		}
	}
}
