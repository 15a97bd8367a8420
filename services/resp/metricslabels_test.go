package resp

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvproject/kv/services/metrics"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every name the server passes its Observer (each command of the table,
// and "unknown") gets its own series from kv's metrics with their default
// bound: with 64, the daemon counted whichever commands its clients used
// after 64 others (74 commands once CLUSTER and its kin came) as "other",
// and looked each of them up under the metrics' lock at every call.
func TestEveryCommandHasItsOwnMetricsSeries(t *testing.T) {
	names := []string{"unknown"}
	for name := range (&Server{}).commandTable() {
		names = append(names, name)
	}
	slices.Sort(names)
	m := metrics.New(metrics.Config{})
	var obs Observer = m
	for _, name := range names {
		obs.ObserveCommand(Protocol, name, time.Microsecond, false)
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	body, err := io.ReadAll(rec.Body)
	require.NoError(t, err)
	text := string(body)
	assert.NotContains(t, text, `command="`+metrics.OtherCommand+`"`)
	for _, name := range names {
		assert.True(t, strings.Contains(text, `kv_commands_total{command="`+name+`",protocol="resp",result="ok"} 1`), name)
	}
}
