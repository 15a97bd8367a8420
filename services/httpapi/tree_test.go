package httpapi_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/services"
	"github.com/kvproject/kv/services/httpapi"
	"github.com/kvproject/kv/services/metrics"
	"github.com/kvproject/kv/services/text"
)

// TestFrontEndsInTheTree wires the two front ends as a daemon does: one
// Metrics, both servers added to the root after the registry, listeners
// opened first. A bucket made over one protocol is seen over the other,
// /metrics counts both, and stopping the root stops everything.
func TestFrontEndsInTheTree(t *testing.T) {
	root := services.New(services.Config{})
	m := metrics.New(metrics.Config{Tree: root.Registry(), Events: root.Events()})
	textLn, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	root.Add(text.New(text.Config{Listener: textLn, Registry: root.Registry(), Observer: m, Password: "pw"}))
	root.Add(httpapi.New(httpapi.Config{
		Listener: httpLn, Registry: root.Registry(), Events: root.Events(), Metrics: m, Password: "pw",
	}))
	ctx, cancel := context.WithCancel(context.Background())
	errc := root.ServeBackground(ctx)

	conn, err := net.Dial("tcp", textLn.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	r := bufio.NewReader(conn)
	for _, step := range []struct{ send, want string }{
		{"AUTH pw", "OK\r\n"}, {"CREATE shopping", "OK\r\n"}, {"PUT shopping milk 1", "OK\r\n"},
	} {
		fmt.Fprintf(conn, "%s\r\n", step.send)
		got, err := r.ReadString('\n')
		require.NoError(t, err)
		require.Equal(t, step.want, got)
	}

	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	get := func(path string) string {
		req, err := http.NewRequest("GET", "http://"+httpLn.Addr().String()+path, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer pw")
		resp, err := client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		return string(b)
	}
	require.Equal(t, "1", get("/v1/buckets/shopping/keys/milk"))
	exposition := get("/metrics")
	for _, s := range []string{
		`kv_commands_total{command="put",protocol="text",result="ok"} 1`,
		`kv_commands_total{command="get_key",protocol="http",result="ok"} 1`,
		`kv_connected_clients{protocol="text"} 1`,
		`kv_buckets 1`,
		`kv_keys 1`,
	} {
		assert.Contains(t, exposition, s)
	}
	assert.Contains(t, exposition, `kv_connected_clients{protocol="http"} 1`)

	cancel()
	<-errc
	_, err = r.ReadString('\n')
	require.ErrorIs(t, err, io.EOF, "the text connection closed with the tree")
}
