package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kvproject/kv/bucket"
	"github.com/kvproject/kv/events"
	"github.com/kvproject/kv/internal/store"
	"github.com/kvproject/kv/services"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// observer is the interface the front ends declare, consumer side.
type observer interface {
	ObserveCommand(protocol, command string, elapsed time.Duration, failed bool)
	ObserveClients(protocol string, delta int)
}

var _ observer = (*Metrics)(nil)

func TestObserveCommand(t *testing.T) {
	m := New(Config{})
	m.ObserveCommand(ProtocolText, "get", time.Millisecond, false)
	m.ObserveCommand(ProtocolText, "get", 2*time.Millisecond, false)
	m.ObserveCommand(ProtocolText, "get", time.Millisecond, true)
	m.ObserveCommand(ProtocolRESP, "get", time.Millisecond, false)

	assert.Equal(t, 2.0, testutil.ToFloat64(m.commands.WithLabelValues("text", "get", "ok")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.commands.WithLabelValues("text", "get", "error")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.commands.WithLabelValues("resp", "get", "ok")))

	want := `
# HELP kv_command_duration_seconds Time to serve a command, from parsed request to reply, by protocol and command.
# TYPE kv_command_duration_seconds histogram
kv_command_duration_seconds_bucket{command="get",protocol="text",le="1e-05"} 0
kv_command_duration_seconds_bucket{command="get",protocol="text",le="4e-05"} 0
kv_command_duration_seconds_bucket{command="get",protocol="text",le="0.00016"} 0
kv_command_duration_seconds_bucket{command="get",protocol="text",le="0.00064"} 0
kv_command_duration_seconds_bucket{command="get",protocol="text",le="0.00256"} 3
kv_command_duration_seconds_bucket{command="get",protocol="text",le="0.01024"} 3
kv_command_duration_seconds_bucket{command="get",protocol="text",le="0.04096"} 3
kv_command_duration_seconds_bucket{command="get",protocol="text",le="0.16384"} 3
kv_command_duration_seconds_bucket{command="get",protocol="text",le="0.65536"} 3
kv_command_duration_seconds_bucket{command="get",protocol="text",le="2.62144"} 3
kv_command_duration_seconds_bucket{command="get",protocol="text",le="+Inf"} 3
kv_command_duration_seconds_sum{command="get",protocol="text"} 0.004
kv_command_duration_seconds_count{command="get",protocol="text"} 3
kv_command_duration_seconds_bucket{command="get",protocol="resp",le="1e-05"} 0
kv_command_duration_seconds_bucket{command="get",protocol="resp",le="4e-05"} 0
kv_command_duration_seconds_bucket{command="get",protocol="resp",le="0.00016"} 0
kv_command_duration_seconds_bucket{command="get",protocol="resp",le="0.00064"} 0
kv_command_duration_seconds_bucket{command="get",protocol="resp",le="0.00256"} 1
kv_command_duration_seconds_bucket{command="get",protocol="resp",le="0.01024"} 1
kv_command_duration_seconds_bucket{command="get",protocol="resp",le="0.04096"} 1
kv_command_duration_seconds_bucket{command="get",protocol="resp",le="0.16384"} 1
kv_command_duration_seconds_bucket{command="get",protocol="resp",le="0.65536"} 1
kv_command_duration_seconds_bucket{command="get",protocol="resp",le="2.62144"} 1
kv_command_duration_seconds_bucket{command="get",protocol="resp",le="+Inf"} 1
kv_command_duration_seconds_sum{command="get",protocol="resp"} 0.001
kv_command_duration_seconds_count{command="get",protocol="resp"} 1
`
	require.NoError(t, testutil.GatherAndCompare(m.Prometheus(), strings.NewReader(want), "kv_command_duration_seconds"))
}

func TestObserveClients(t *testing.T) {
	m := New(Config{})
	m.ObserveClients(ProtocolHTTP, 1)
	m.ObserveClients(ProtocolHTTP, 1)
	m.ObserveClients(ProtocolText, 1)
	m.ObserveClients(ProtocolHTTP, -1)
	assert.Equal(t, 1.0, testutil.ToFloat64(m.clients.WithLabelValues("http")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.clients.WithLabelValues("text")))
}

func TestObserveDoesNotAllocate(t *testing.T) {
	m := New(Config{})
	m.ObserveCommand(ProtocolRESP, "set", time.Microsecond, false)
	m.ObserveClients(ProtocolRESP, 1)
	allocs := testing.AllocsPerRun(1000, func() {
		m.ObserveCommand(ProtocolRESP, "set", time.Microsecond, false)
		m.ObserveCommand(ProtocolRESP, "set", time.Microsecond, true)
		m.ObserveClients(ProtocolRESP, 1)
		m.ObserveClients(ProtocolRESP, -1)
	})
	assert.Zero(t, allocs)
}

func TestCommandLabelsAreBounded(t *testing.T) {
	m := New(Config{MaxCommands: 2})
	for _, c := range []string{"a", "b", "c", "d", "a", "c"} {
		m.ObserveCommand(ProtocolRESP, c, time.Microsecond, false)
	}
	m.ObserveCommand(ProtocolText, "x", time.Microsecond, false) // another protocol has its own limit
	assert.Equal(t, 2.0, testutil.ToFloat64(m.commands.WithLabelValues("resp", "a", "ok")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.commands.WithLabelValues("resp", "b", "ok")))
	assert.Equal(t, 3.0, testutil.ToFloat64(m.commands.WithLabelValues("resp", OtherCommand, "ok")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.commands.WithLabelValues("text", "x", "ok")))
	// resp: a, b, other, each with ok and error; text: x with ok and error.
	assert.Equal(t, 8, testutil.CollectAndCount(m.commands))
}

func TestConcurrentObservers(t *testing.T) {
	m := New(Config{MaxCommands: 8})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				m.ObserveCommand(ProtocolRESP, fmt.Sprintf("c%d", (g+i)%12), time.Microsecond, i%2 == 0)
				m.ObserveClients(fmt.Sprintf("p%d", i%3), 1)
			}
		}()
	}
	wg.Wait()
	total := 0.0
	for _, name := range []string{"ok", "error"} {
		for i := range 12 {
			total += testutil.ToFloat64(m.commands.WithLabelValues("resp", fmt.Sprintf("c%d", i), name))
		}
		total += testutil.ToFloat64(m.commands.WithLabelValues("resp", OtherCommand, name))
	}
	assert.Equal(t, 8*200.0, total)
}

func TestEndReason(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, ReasonNormal},
		{&bucket.PanicError{Value: "boom"}, ReasonPanic},
		{fmt.Errorf("wrapped: %w", &bucket.PanicError{Value: 1}), ReasonPanic},
		{context.Canceled, ReasonShutdown},
		{context.DeadlineExceeded, ReasonShutdown},
		{errors.New("disk on fire"), ReasonError},
		{bucket.ErrIdle, ReasonIdle},
	} {
		assert.Equal(t, tc.want, EndReason(tc.err), "EndReason(%v)", tc.err)
	}
}

func TestTreeSeries(t *testing.T) {
	root := services.New(services.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	errc := root.ServeBackground(ctx)
	m := New(Config{Tree: root.Registry(), Events: root.Events()})

	reg := root.Registry()
	a, err := reg.Create(ctx, "a")
	require.NoError(t, err)
	b, err := reg.Create(ctx, "b")
	require.NoError(t, err)
	require.NoError(t, a.Put("k1", []byte("v")))
	require.NoError(t, a.Put("k2", []byte("v")))
	require.NoError(t, b.Put("k1", []byte("v")))
	_, err = reg.Create(ctx, "c")
	require.NoError(t, err)
	require.NoError(t, reg.Delete(ctx, "c"))
	_, err = reg.Create(ctx, "d")
	require.NoError(t, err)
	d, _ := reg.Lookup("d")
	require.Error(t, d.Update(func(*bucket.Tx) error { panic("boom") }))

	require.Eventually(t, func() bool { return reg.Ends().Panic == 1 }, 10*time.Second, time.Millisecond,
		"d's end is forgotten")

	want := `
# HELP kv_buckets Buckets: the live ones and, with a durable store, the stored ones not loaded yet.
# TYPE kv_buckets gauge
kv_buckets 2
# HELP kv_buckets_in_memory Buckets in memory (live); with a durable store, stored buckets are loaded at their first use.
# TYPE kv_buckets_in_memory gauge
kv_buckets_in_memory 2
# HELP kv_keys Keys over the buckets in memory.
# TYPE kv_keys gauge
kv_keys 3
# HELP kv_events_published_total Lifecycle events published by the event manager.
# TYPE kv_events_published_total counter
kv_events_published_total 6
# HELP kv_events_dropped_total Event deliveries lost to full subscriber mailboxes, over all subscribers.
# TYPE kv_events_dropped_total counter
kv_events_dropped_total 0
# HELP kv_event_subscribers Live event subscriptions.
# TYPE kv_event_subscribers gauge
kv_event_subscribers 0
`
	require.NoError(t, testutil.GatherAndCompare(m.Prometheus(), strings.NewReader(want),
		"kv_buckets", "kv_buckets_in_memory", "kv_keys", "kv_events_published_total", "kv_events_dropped_total", "kv_event_subscribers"))
	requireEnds(t, m, map[string]int{ReasonNormal: 1, ReasonPanic: 1})

	// The exposition over HTTP carries the same series and the runtime's.
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, err := io.ReadAll(rec.Body)
	require.NoError(t, err)
	for _, s := range []string{"kv_buckets 2", `kv_bucket_ends_total{reason="panic"} 1`, "go_goroutines", "process_"} {
		assert.Contains(t, string(body), s)
	}

	cancel()
	<-errc
	// Stopping the tree counts the survivors' ends.
	requireEnds(t, m, map[string]int{ReasonNormal: 1, ReasonPanic: 1, ReasonShutdown: 2})
}

// requireEnds requires kv_bucket_ends_total to have a series for every
// reason, each at want's count (0 if absent).
func requireEnds(t *testing.T, m *Metrics, want map[string]int) {
	t.Helper()
	var b strings.Builder
	b.WriteString("# HELP kv_bucket_ends_total Buckets that ended, by reason (normal, error, panic, shutdown, idle).\n")
	b.WriteString("# TYPE kv_bucket_ends_total counter\n")
	for _, r := range []string{ReasonError, ReasonIdle, ReasonNormal, ReasonPanic, ReasonShutdown} {
		fmt.Fprintf(&b, "kv_bucket_ends_total{reason=%q} %d\n", r, want[r])
	}
	require.NoError(t, testutil.GatherAndCompare(m.Prometheus(), strings.NewReader(b.String()), "kv_bucket_ends_total"))
}

// With a durable store, a scrape counts the stored buckets without loading
// any: kv_buckets has them all, kv_buckets_in_memory and kv_keys only those
// in memory.
func TestTreeSeriesLoadNothing(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(dir, store.Options{Fsync: store.FsyncNo})
	require.NoError(t, err)
	defer func() { require.NoError(t, st.Close()) }()
	for i := range 20 {
		name := fmt.Sprintf("b%d", i)
		require.NoError(t, st.Apply(name, store.Put("k", []byte("v")), store.Put("k2", []byte("v"))))
	}
	root := services.New(services.Config{Store: st})
	ctx, cancel := context.WithCancel(context.Background())
	errc := root.ServeBackground(ctx)
	defer func() { cancel(); <-errc }()
	m := New(Config{Tree: root.Registry(), Events: root.Events()})

	gauges := func() string {
		t.Helper()
		mfs, err := m.Prometheus().Gather()
		require.NoError(t, err)
		var out []string
		for _, mf := range mfs {
			switch mf.GetName() {
			case "kv_buckets", "kv_buckets_in_memory", "kv_keys":
				out = append(out, fmt.Sprintf("%s=%v", mf.GetName(), mf.GetMetric()[0].GetGauge().GetValue()))
			}
		}
		return strings.Join(out, " ")
	}
	assert.Equal(t, "kv_buckets=20 kv_buckets_in_memory=0 kv_keys=0", gauges())
	assert.Empty(t, root.Registry().Live(), "the scrape loaded no bucket")
	_, ok := root.Registry().Lookup("b3") // loaded at its first use
	require.True(t, ok)
	assert.Equal(t, "kv_buckets=20 kv_buckets_in_memory=1 kv_keys=2", gauges())
}

func BenchmarkObserveCommand(b *testing.B) {
	m := New(Config{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.ObserveCommand(ProtocolRESP, "get", time.Microsecond, false)
		}
	})
}

// kv_event_subscribers_removed_total counts the subscribers whose handler
// panicked, which the event manager removes.
func TestSubscribersRemovedTotal(t *testing.T) {
	root := services.New(services.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	errc := root.ServeBackground(ctx)
	defer func() { cancel(); <-errc }()
	m := New(Config{Tree: root.Registry(), Events: root.Events()})

	sub, err := root.Events().Subscribe(events.SubscribeOptions{}, func(events.Event) { panic("subscriber bug") })
	require.NoError(t, err)
	defer sub.Close()
	_, err = root.Registry().Create(ctx, "a")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return root.Events().Stats().Removed == 1 }, 10*time.Second, time.Millisecond)

	want := `
# HELP kv_event_subscribers Live event subscriptions.
# TYPE kv_event_subscribers gauge
kv_event_subscribers 0
# HELP kv_event_subscribers_removed_total Event subscribers removed because their handler panicked.
# TYPE kv_event_subscribers_removed_total counter
kv_event_subscribers_removed_total 1
`
	require.NoError(t, testutil.GatherAndCompare(m.Prometheus(), strings.NewReader(want),
		"kv_event_subscribers", "kv_event_subscribers_removed_total"))
}
