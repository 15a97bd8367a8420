package httpapi

import (
	"bufio"
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kvproject/kv/services/metrics"
)

// scrape reads /metrics into a map from series (name and labels, as
// exposed) to value.
func (a *api) scrape() map[string]float64 {
	a.t.Helper()
	r := a.do("GET", "/metrics", nil)
	require.Equal(a.t, http.StatusOK, r.status)
	series := make(map[string]float64)
	sc := bufio.NewScanner(strings.NewReader(r.body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		require.NoError(a.t, err, line)
		series[line[:i]] = v
	}
	return series
}

func TestMetricsMove(t *testing.T) {
	a := start(t, Config{})
	before := a.scrape()
	assert.Equal(t, 0.0, before["kv_buckets"])
	assert.Contains(t, before, "go_goroutines")
	assert.Contains(t, before, "process_open_fds")
	assert.Contains(t, before, `kv_bucket_ends_total{reason="normal"}`)

	require.Equal(t, http.StatusNoContent, a.do("PUT", bucketPath("b"), nil).status)
	require.Equal(t, http.StatusNoContent, a.do("PUT", keyPath("b", "k"), strings.NewReader("v")).status)
	require.Equal(t, http.StatusNoContent, a.do("PUT", keyPath("b", "k2"), strings.NewReader("v")).status)
	require.Equal(t, http.StatusOK, a.do("GET", keyPath("b", "k"), nil).status)
	require.Equal(t, http.StatusNotFound, a.do("GET", keyPath("b", "nope"), nil).status)

	after := a.scrape()
	assert.Equal(t, 1.0, after["kv_buckets"])
	assert.Equal(t, 2.0, after["kv_keys"])
	assert.Equal(t, 1.0, after[`kv_commands_total{command="create_bucket",protocol="http",result="ok"}`])
	assert.Equal(t, 2.0, after[`kv_commands_total{command="put_key",protocol="http",result="ok"}`])
	assert.Equal(t, 1.0, after[`kv_commands_total{command="get_key",protocol="http",result="ok"}`])
	assert.Equal(t, 1.0, after[`kv_commands_total{command="get_key",protocol="http",result="error"}`])
	assert.Equal(t, 2.0, after[`kv_command_duration_seconds_count{command="get_key",protocol="http"}`])
	assert.GreaterOrEqual(t, after[`kv_connected_clients{protocol="http"}`], 1.0)
	assert.Equal(t, before["kv_events_published_total"]+1, after["kv_events_published_total"])
	assert.Equal(t, 0.0, after["kv_events_dropped_total"])

	require.Equal(t, http.StatusNoContent, a.do("DELETE", bucketPath("b"), nil).status)
	require.Eventually(t, func() bool {
		return a.scrape()[`kv_bucket_ends_total{reason="normal"}`] == 1
	}, 10*time.Second, time.Millisecond)
}

func TestSharedMetrics(t *testing.T) {
	root := tree(t)
	m := metrics.New(metrics.Config{Tree: root.Registry(), Events: root.Events()})
	a := serve(t, root, Config{Metrics: m})
	require.Same(t, m, a.srv.Metrics())
	m.ObserveCommand(metrics.ProtocolText, "get", time.Millisecond, false) // another front end
	require.Equal(t, http.StatusNoContent, a.do("PUT", bucketPath("b"), nil).status)
	got := a.scrape()
	assert.Equal(t, 1.0, got[`kv_commands_total{command="get",protocol="text",result="ok"}`])
	assert.Equal(t, 1.0, got[`kv_commands_total{command="create_bucket",protocol="http",result="ok"}`])
	_, err := root.Registry().Create(context.Background(), "c")
	require.NoError(t, err)
	assert.Equal(t, 2.0, a.scrape()["kv_buckets"])
}
