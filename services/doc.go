// Package services assembles kv's supervision tree: the KV application and
// KV.Supervisor of the seed.
//
// [New] builds a fresh root, a suture supervisor (one_for_one: suture has
// no other strategy) holding, in this order, the event manager, the bucket
// supervisor and the registry (and the registry's Drainer, which does
// nothing until the tree stops: see registry.Registry.Drain). A program
// serves the root on its own; a host
// adds it to its own suture tree. Network front ends are added to the root
// ([Root.Add]) after the registry, so that a listener that fails is
// restarted without touching the buckets; when the root stops, it stops
// them first, then the registry and the buckets, so that commands in
// flight finish against live buckets.
//
// Buckets live in memory unless [Config.DataDir] is set: [OpenDataDir]
// opens a durable store in a directory (the daemon's --data-dir), which
// keeps every bucket on disk under an fsync policy and gives it back to
// the next tree built on it; one tree at a time serves on it.
//
// Every root is independent: two can run side by side in one process.
package services
