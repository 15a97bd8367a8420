// Package registry is kv's registry: the KV.Registry GenServer of the seed,
// which knows every live bucket by name.
//
// Like the seed's registry it keeps two tables: names (bucket name to
// bucket) and refs (bucket instance to name, the seed's monitor references).
// [Registry.Create] asks the bucket supervisor for a new bucket, records it
// in both tables and publishes [events.Created]; when the bucket
// supervisor's termination hook reports that a bucket ended (the :DOWN
// message), the registry's loop deletes both entries, then publishes
// [events.Exited].
//
// # Lookups do not queue
//
// The guide moved lookups out of the GenServer into an ETS table. Here
// [Registry.Lookup] reads the names table under a read lock and never waits
// for the loop; Create and the loop take the write lock only to change an
// entry. (With a store, a miss on a stored name that a RENAME is replacing
// waits for the rename, which waits for the loop: see Lookup.)
//
// # Surviving a crash
//
// In the guide the ETS table is owned by the supervisor, so it outlives a
// crash of the registry process, and the restarted registry monitors the
// entries again. Here the tables and the mailbox of end notices belong to the
// Registry value, which suture keeps when it restarts a crashed Serve: the
// new Serve finds every live bucket, processes the notices that arrived while
// it was down, and, to "monitor existing entries" again, also looks for any
// bucket that ended while the crashed loop held its notice.
//
// A Serve that crashes more often than its supervisor allows is held back
// for the supervisor's FailureBackoff. Meanwhile the buckets' end hooks
// do the loop's work as each bucket ends, so that nothing waits for
// suture to forget a bucket; if the tree stops meanwhile, suture never
// runs Serve again. The service [Registry.Drainer] returns, added
// beside the registry (services.New does), then does its stop in its
// stead (see [Registry.Drain]).
//
// # Durable buckets
//
// With [Config].Store, every bucket's data is kept in a durable store and
// buckets are loaded lazily: start-up reads only the names of the stored
// buckets, which [New] keeps in memory; the first
// [Registry.Lookup] or [Registry.Create] of a stored name loads it on the
// caller's goroutine (never the loop's), builds the bucket with its pairs
// and starts it; concurrent first uses of a name share one load. A bucket
// that ends for any reason but [Registry.Delete] (a crash, a failed write)
// keeps its data, and its next use brings it back whole. Delete drops the
// data, [Registry.FlushAll] empties the store, [Registry.Rename] moves a
// bucket's pairs in one atomic write, and [Registry.Copy] copies them in
// one. [Registry.Names] and [Registry.Len]
// count stored buckets whether they are loaded or not, from the names in
// memory, as does a Lookup of a name that is not stored: none of them reads
// the store. Lookup of a live bucket stays a read-locked map hit.
//
// # Names
//
// A bucket name is any non-empty string of bytes up to [MaxNameLen] bytes.
package registry
