package metrics

import "github.com/prometheus/client_golang/prometheus"

// treeCollector reads the registry and the event manager when scraped.
type treeCollector struct {
	tree   Tree
	events EventSource

	bucketsDesc, inMemoryDesc, keysDesc, endsDesc            *prometheus.Desc
	publishedDesc, droppedDesc, subscribersDesc, removedDesc *prometheus.Desc
}

func newTreeCollector(tree Tree, ev EventSource) *treeCollector {
	return &treeCollector{
		tree:   tree,
		events: ev,
		bucketsDesc: prometheus.NewDesc("kv_buckets",
			"Buckets: the live ones and, with a durable store, the stored ones not loaded yet.", nil, nil),
		inMemoryDesc: prometheus.NewDesc("kv_buckets_in_memory",
			"Buckets in memory (live); with a durable store, stored buckets are loaded at their first use.", nil, nil),
		keysDesc: prometheus.NewDesc("kv_keys",
			"Keys over the buckets in memory.", nil, nil),
		endsDesc: prometheus.NewDesc("kv_bucket_ends_total",
			"Buckets that ended, by reason (normal, error, panic, shutdown, idle).", []string{"reason"}, nil),
		publishedDesc: prometheus.NewDesc("kv_events_published_total",
			"Lifecycle events published by the event manager.", nil, nil),
		droppedDesc: prometheus.NewDesc("kv_events_dropped_total",
			"Event deliveries lost to full subscriber mailboxes, over all subscribers.", nil, nil),
		subscribersDesc: prometheus.NewDesc("kv_event_subscribers",
			"Live event subscriptions.", nil, nil),
		removedDesc: prometheus.NewDesc("kv_event_subscribers_removed_total",
			"Event subscribers removed because their handler panicked.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *treeCollector) Describe(ch chan<- *prometheus.Desc) {
	if c.tree != nil {
		ch <- c.bucketsDesc
		ch <- c.inMemoryDesc
		ch <- c.keysDesc
		ch <- c.endsDesc
	}
	if c.events != nil {
		ch <- c.publishedDesc
		ch <- c.droppedDesc
		ch <- c.subscribersDesc
		ch <- c.removedDesc
	}
}

// Collect implements prometheus.Collector. Counting keys visits every
// bucket in memory (one read lock each), so a scrape costs O(live buckets);
// it loads no stored bucket.
func (c *treeCollector) Collect(ch chan<- prometheus.Metric) {
	if c.tree != nil {
		live := c.tree.Live()
		keys := 0
		for _, b := range live {
			if n, err := b.Len(); err == nil { // an ended bucket holds nothing
				keys += n
			}
		}
		ch <- prometheus.MustNewConstMetric(c.bucketsDesc, prometheus.GaugeValue, float64(c.tree.Len()))
		ch <- prometheus.MustNewConstMetric(c.inMemoryDesc, prometheus.GaugeValue, float64(len(live)))
		ch <- prometheus.MustNewConstMetric(c.keysDesc, prometheus.GaugeValue, float64(keys))
		ends := c.tree.Ends()
		for _, e := range []struct {
			reason string
			n      uint64
		}{
			{ReasonNormal, ends.Normal},
			{ReasonError, ends.Error},
			{ReasonPanic, ends.Panic},
			{ReasonShutdown, ends.Shutdown},
			{ReasonIdle, ends.Idle},
		} {
			ch <- prometheus.MustNewConstMetric(c.endsDesc, prometheus.CounterValue, float64(e.n), e.reason)
		}
	}
	if c.events != nil {
		st := c.events.Stats()
		ch <- prometheus.MustNewConstMetric(c.publishedDesc, prometheus.CounterValue, float64(st.Published))
		ch <- prometheus.MustNewConstMetric(c.droppedDesc, prometheus.CounterValue, float64(st.Dropped))
		ch <- prometheus.MustNewConstMetric(c.subscribersDesc, prometheus.GaugeValue, float64(st.Subscribers))
		ch <- prometheus.MustNewConstMetric(c.removedDesc, prometheus.CounterValue, float64(st.Removed))
	}
}
