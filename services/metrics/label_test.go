package metrics

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The package says the command label comes from clients (an unknown Redis
// command, say) and bounds how many values it takes; a client's bytes need
// not be UTF-8, which client_golang's WithLabelValues answers with a
// panic: one odd command name would crash the front end's goroutine that
// reports it. Each must be counted, and /metrics stay parseable.
func TestObserveAnyCommandName(t *testing.T) {
	for _, name := range []string{"\xff", "get\xc3", "a\x00b", "quo\"te\\back\nslash"} {
		t.Run(name, func(t *testing.T) {
			m := New(Config{})
			require.NotPanics(t, func() { m.ObserveCommand(ProtocolRESP, name, time.Millisecond, false) })
			rec := httptest.NewRecorder()
			m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
			parser := expfmt.NewTextParser(model.LegacyValidation)
			fams, err := parser.TextToMetricFamilies(rec.Body)
			require.NoError(t, err)
			var total float64
			for _, mt := range fams["kv_commands_total"].GetMetric() {
				total += mt.GetCounter().GetValue()
			}
			assert.Equal(t, 1.0, total)
		})
	}
}

// Names that differ only in bytes that are not UTF-8 share one label: they
// take one of the protocol's MaxCommands values, not one each, and the
// cache of resolved series stays bounded however many spellings come.
func TestInvalidSpellingsShareOneCommandValue(t *testing.T) {
	m := New(Config{MaxCommands: 2})
	for i := range 300 {
		m.ObserveCommand(ProtocolRESP, "x"+string([]byte{0x80 + byte(i%64), 0xff}), time.Microsecond, false)
	}
	m.ObserveCommand(ProtocolRESP, "get", time.Microsecond, false)
	assert.Equal(t, 300.0, testutil.ToFloat64(m.commands.WithLabelValues(ProtocolRESP, "x\uFFFD", "ok")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.commands.WithLabelValues(ProtocolRESP, "get", "ok")),
		"get has the second value, not other")
	assert.LessOrEqual(t, len(*m.series.Load()), 3)
}
