// Package bucket holds kv's buckets: the KV.Bucket agents of the seed, and
// the KV.Bucket.Supervisor that starts them.
//
// A [Bucket] owns one set of key/value pairs. Keys are strings and values are
// byte slices; both may hold any bytes. Operations on one bucket are
// linearizable: reads run in parallel under a read lock, writes are
// serialized, and [Bucket.Update] runs a caller's function atomically "in the
// bucket's context", as the Agent's get_and_update does.
//
// # Ownership of bytes
//
// No caller can alias a stored value. Put and Tx.Put copy the value in; Get,
// Delete, Tx.Get and Tx.ForEach hand out copies, and AppendValue copies into
// the caller's buffer. A slice you pass in or get back is yours to keep and
// to modify.
//
// # The end of a bucket
//
// A bucket ends once: stopped ([Bucket.Stop], with nil for a normal stop or
// an error), crashed (a panic in an Update function, reported as a
// *[PanicError] with the stack), or cancelled with the tree. From then on
// every operation returns [ErrEnded], never a silent success: a write is never
// lost without its caller being told. An in-memory bucket's data dies with
// it, as the Agent's state dies with its process; a durable bucket's data
// stays in its store.
//
// # Durable buckets
//
// A bucket made by [Restore] with a [Store] records every write in the
// store before it acknowledges it. Delete and Update write to the store
// under the write lock before they change memory (a write the store refuses
// changes nothing and returns the error). Put and Set change memory under
// the lock and join a group commit: the writes that arrive while one group
// is being written go to the store as the next batch, written by the
// group's first writer once it retakes the lock. Every other write and every
// end of the bucket write the pending group first, so the store sees the
// writes in memory's order, and whatever follows an end (a drop, a move)
// comes after them. The lock is released before waiting for the disk, so
// concurrent writers share one sync. A write that fails once it is in
// memory (the store refused its group, or its sync failed) ends the bucket
// with that error, which the write returns: the bucket's next use (the
// registry's load) brings back what the store holds, which does not hold
// the failed write. Reads never touch the store. A bucket made by [New] (or
// Restore with a nil Store) never touches a store.
//
// # Supervision
//
// A [Supervisor] adds each bucket as a temporary child of a suture
// supervisor: never restarted. Suture's EventHook does not fire for such
// children, so the Supervisor wraps each one with its own termination hook,
// which reports every end, whatever its cause, exactly once to the function
// given to [Supervisor.Start] (the registry's monitor).
package bucket
