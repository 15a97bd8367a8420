package metrics

import (
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/events"
	"github.com/kvproject/kv/registry"
)

// Protocol label values used by kv's front ends.
const (
	ProtocolRESP = "resp"
	ProtocolText = "text"
	ProtocolHTTP = "http"
)

// OtherCommand is the command label of commands past the per-protocol limit
// ([Config.MaxCommands]).
const OtherCommand = "other"

// Reasons a bucket ends, as [EndReason] names them: the values of the reason
// label of kv_bucket_ends_total, and of the SSE stream's reason field.
const (
	ReasonNormal   = bucket.EndNormal   // stopped normally (a delete)
	ReasonError    = bucket.EndError    // stopped with an error
	ReasonPanic    = bucket.EndPanic    // crashed: a *bucket.PanicError
	ReasonShutdown = bucket.EndShutdown // cancelled with the tree
	ReasonIdle     = bucket.EndIdle     // taken out of memory, unused (its data stays on disk)
)

// DefaultMaxCommands is Config.MaxCommands when it is zero: more than the
// distinct names any of kv's front ends passes (the Redis protocol's
// commands and "unknown", 75 of them), so that each gets its own series.
const DefaultMaxCommands = 128

// Tree is what the collectors read from kv's registry when scraped;
// *registry.Registry is one.
type Tree interface {
	// Len counts the buckets: live, and with a store, stored.
	Len() int
	// Live returns the buckets in memory, without loading any.
	Live() []*bucket.Bucket
	// Ends counts the buckets that have ended, by kind.
	Ends() registry.EndCounts
}

// EventSource is what the collectors read from kv's event manager;
// *events.Manager is one.
type EventSource interface {
	Stats() events.Stats
}

// Config configures a [Metrics]. The zero value is ready to use: it collects
// the front ends' series and the Go runtime's, and nothing from a tree.
type Config struct {
	// Tree, when set, feeds kv_buckets, kv_buckets_in_memory, kv_keys and
	// kv_bucket_ends_total at scrape time.
	Tree Tree
	// Events, when set, feeds the kv_events_* series at scrape time.
	Events EventSource
	// MaxCommands bounds the distinct command label values per protocol;
	// later ones are counted as "other". 0 means DefaultMaxCommands.
	MaxCommands int
	// Logger receives the package's reports. Nil discards them.
	Logger *slog.Logger
}

// Metrics is the set of kv's collectors, registered on a private registry.
// Create one with [New]; all methods are safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry
	log *slog.Logger
	max int

	commands *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	clients  *prometheus.GaugeVec

	mu       sync.Mutex // serializes the copy-on-write inserts below
	series   atomic.Pointer[map[seriesKey]*commandSeries]
	gauges   atomic.Pointer[map[string]prometheus.Gauge]
	perProto map[string]int // distinct commands per protocol, under mu
}

type seriesKey struct{ protocol, command string }

// commandSeries is the resolved children of one (protocol, command) pair.
type commandSeries struct {
	ok, failed prometheus.Counter
	latency    prometheus.Observer
}

// New builds the collectors and registers them on a new private registry.
// It starts nothing: the tree's series are read from Config.Tree and
// Config.Events when scraped.
func New(cfg Config) *Metrics {
	m := &Metrics{
		reg:      prometheus.NewRegistry(),
		log:      cfg.Logger,
		max:      cfg.MaxCommands,
		perProto: make(map[string]int),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kv_commands_total",
			Help: "Commands served, by protocol, command and result (ok or error).",
		}, []string{"protocol", "command", "result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kv_command_duration_seconds",
			Help:    "Time to serve a command, from parsed request to reply, by protocol and command.",
			Buckets: prometheus.ExponentialBuckets(10e-6, 4, 10), // 10µs .. 2.6s
		}, []string{"protocol", "command"}),
		clients: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kv_connected_clients",
			Help: "Client connections open now, by protocol.",
		}, []string{"protocol"}),
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.max <= 0 {
		m.max = DefaultMaxCommands
	}
	empty := map[seriesKey]*commandSeries{}
	m.series.Store(&empty)
	noGauges := map[string]prometheus.Gauge{}
	m.gauges.Store(&noGauges)
	m.reg.MustRegister(
		m.commands, m.latency, m.clients,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	if cfg.Tree != nil || cfg.Events != nil {
		m.reg.MustRegister(newTreeCollector(cfg.Tree, cfg.Events))
	}
	return m
}

// Prometheus returns the private registry, to gather from or to register
// more collectors on.
func (m *Metrics) Prometheus() *prometheus.Registry { return m.reg }

// Handler returns an http.Handler serving the registry in the Prometheus
// exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(m.log.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// ObserveCommand records one command served over protocol: it counts the
// command under result "ok" or "error" (failed) and adds elapsed to its
// latency histogram. After the first call for a (protocol, command) pair it
// does not allocate, if command is valid UTF-8.
func (m *Metrics) ObserveCommand(protocol, command string, elapsed time.Duration, failed bool) {
	s := m.commandSeries(protocol, command)
	if failed {
		s.failed.Inc()
	} else {
		s.ok.Inc()
	}
	s.latency.Observe(elapsed.Seconds())
}

// ObserveClients adds delta (+1 on connect, -1 on disconnect) to the
// connected clients of protocol.
func (m *Metrics) ObserveClients(protocol string, delta int) {
	if g, ok := (*m.gauges.Load())[protocol]; ok {
		g.Add(float64(delta))
		return
	}
	m.mu.Lock()
	cur := *m.gauges.Load()
	g, ok := cur[protocol]
	if !ok {
		g = m.clients.WithLabelValues(protocol)
		next := make(map[string]prometheus.Gauge, len(cur)+1)
		for k, v := range cur {
			next[k] = v
		}
		next[protocol] = g
		m.gauges.Store(&next)
	}
	m.mu.Unlock()
	g.Add(float64(delta))
}

func (m *Metrics) commandSeries(protocol, command string) *commandSeries {
	if s, ok := (*m.series.Load())[seriesKey{protocol, command}]; ok {
		return s
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := *m.series.Load()
	key := seriesKey{protocol, command}
	if s, ok := cur[key]; ok {
		return s
	}
	// A client's bytes need not be UTF-8; a label must be (client_golang
	// panics otherwise).
	label := strings.ToValidUTF8(command, "\uFFFD")
	if label != command {
		// Another spelling of a label: it shares that label's series and
		// its one command value. Only valid names are cached, so that
		// endless invalid spellings cannot grow the map.
		if s, ok := cur[seriesKey{protocol, label}]; ok {
			return s
		}
	}
	if m.perProto[protocol] >= m.max {
		label = OtherCommand
		if s, ok := cur[seriesKey{protocol, OtherCommand}]; ok {
			return s // not cached under key: the map stays bounded
		}
	}
	s := &commandSeries{
		ok:      m.commands.WithLabelValues(protocol, label, "ok"),
		failed:  m.commands.WithLabelValues(protocol, label, "error"),
		latency: m.latency.WithLabelValues(protocol, label),
	}
	next := make(map[seriesKey]*commandSeries, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	// Cached under its label, which is key for a valid name.
	next[seriesKey{protocol, label}] = s
	if label != OtherCommand {
		m.perProto[protocol]++
	}
	m.series.Store(&next)
	return s
}

// EndReason names why a bucket ended, from an events.Exited Reason: "normal"
// for nil, "panic" for a *bucket.PanicError, "shutdown" for a context's
// error, "idle" for bucket.ErrIdle, "error" for anything else.
func EndReason(err error) string { return bucket.EndKind(err) }
