// Package metrics holds kv's Prometheus collectors, shared by every network
// front end (the Redis protocol, the guide's line protocol, HTTP).
//
// A [Metrics] owns a private prometheus.Registry (never the global default),
// so two kv trees in one process keep separate numbers. Front ends report
// through two methods, which make it an Observer as the front ends declare
// it:
//
//	ObserveCommand(protocol, command string, elapsed time.Duration, failed bool)
//	ObserveClients(protocol string, delta int)
//
// Both are cheap enough for the hot path: the label children of each
// (protocol, command) pair are resolved once and cached in a copy-on-write
// map, so a call after the first one for a pair performs no allocation and
// takes no lock (for a command name that is valid UTF-8 and among the
// first MaxCommands of its protocol; see Cardinality: a name counted as
// "other" is not cached, so that endless names cannot grow the map, and
// takes the lock at every call).
//
// # Series
//
// Fed by the front ends:
//
//	kv_commands_total{protocol,command,result}      counter; result is "ok" or "error"
//	kv_command_duration_seconds{protocol,command}    histogram, 10µs to 2.6s
//	kv_connected_clients{protocol}                   gauge
//
// Read from the tree when scraped ([Config.Tree], [Config.Events]):
//
//	kv_buckets                        gauge, buckets (with a store, stored ones too)
//	kv_buckets_in_memory              gauge, buckets in memory (live)
//	kv_keys                           gauge, keys over the buckets in memory
//	kv_events_published_total         counter, events.Stats.Published
//	kv_events_dropped_total           counter, events.Stats.Dropped
//	kv_event_subscribers              gauge, events.Stats.Subscribers
//	kv_event_subscribers_removed_total counter, events.Stats.Removed
//	kv_bucket_ends_total{reason}      counter, registry.Registry.Ends: each end once, even
//	                                  those a slow subscriber loses; reason is normal,
//	                                  error, panic, shutdown or idle
//
// And the Go runtime and process collectors (go_*, process_*).
//
// # Cardinality
//
// kv's front ends pass fixed command names (an unknown Redis command is
// "unknown"), but the package does not rely on it: a name need not be
// UTF-8 (its invalid bytes become U+FFFD in the label, and names that then
// agree share one value), and each protocol gets at most
// [Config.MaxCommands] distinct command values (128 by default); past that,
// commands are counted under "other".
package metrics
