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
// Tx.Get and Tx.ForEach hand out copies, Delete hands out the value it
// removed (no one else holds it any more), and AppendValue copies into the
// caller's buffer. A slice you pass in or get back is yours to keep and
// to modify.
//
// # The end of a bucket
//
// A bucket ends once: stopped ([Bucket.Stop], with nil for a normal stop or
// an error), crashed (a panic in a View or Update function, reported as a
// *[PanicError] with the stack), or cancelled with the tree. From then on
// every operation returns [ErrEnded], never a silent success: a write is never
// lost without its caller being told. An in-memory bucket's data dies with
// it, as the Agent's state dies with its process; a durable bucket's data
// stays in its store.
//
// # Durable buckets
//
// A bucket made by [Restore] with a [Store] records each write in the store
// under its write lock before changing its memory (Put, Set, Delete, and an
// Update as one batch of the keys it wrote), releases the lock, and waits
// for the write to be durable before it returns, so that concurrent writers
// share one sync. A write the store refuses changes nothing and returns the
// error; a write that fails after it was applied in memory (its sync
// failed) ends the bucket with that error, and the error is returned: the
// bucket's next use (the registry's load) brings back what the store holds,
// which does not hold the failed write. Reads never touch the store. A
// bucket made by [New] (or Restore with a nil Store) never touches a store.
//
// # Supervision
//
// A [Supervisor] adds each bucket as a temporary child of a suture
// supervisor: never restarted. Suture's EventHook does not fire for such
// children, so the Supervisor wraps each one with its own termination hook,
// which reports every end, whatever its cause, exactly once to the function
// given to [Supervisor.Start] (the registry's monitor).
package bucket
