// Package store is kv's durable store: the storage layer under the buckets,
// on Pebble (the LSM engine under CockroachDB). kv serves every read from
// memory; the store records every write durably and is read only to rebuild
// the memory at start-up ([Store.LoadAll], or [Store.Load] for one bucket).
//
// # Basics
//
// [Open] opens (creating if needed) and locks a data directory. Writes are
// atomic batches: [Store.Apply] changes one bucket's pairs,
// [Store.CreateBucket], [Store.DropBucket] and [Store.DropAll] change the
// set of buckets. Bucket names and keys are arbitrary bytes. No pebble type
// appears in the API.
//
// # Key layout
//
// Every key starts with a tag byte: 0x00 for the store's own records (the
// store format's version, the time of the last checkpoint: see keys.go),
// 0x01 for a bucket marker (0x01, the name's length as a uvarint, the
// name: so that an empty bucket survives a restart), 0x02 for a pair
// (0x02, the name's length, the name, the key), and 0x04 for a log record
// (0x04, its number: 8 bytes, big-endian). The length prefix keeps names
// prefix-free whatever bytes they hold, so a bucket's pairs are exactly the keys under its prefix and dropping a
// bucket is one range deletion (which the fold makes point deletions of
// its pairs when it has at most 64: a range deletion in the memtable
// slows every read until the next flush).
//
// Writes reach the bucket keys through the log: each commit (a group of
// writes, below) is one log record, whose value is the group's pebble
// batch, and the records are folded into the bucket keys later, in order,
// keeping of each key its last change: in the background once 8 MiB of
// records have accumulated, by every read of the bucket keys first, and at
// Open (what a crash or a stop left). One memtable insert per group,
// at the end of the log, costs the engine far less than one per field at
// its place among the others.
//
// # Durability
//
// [Options].Fsync chooses one of Redis's appendfsync policies. FsyncAlways:
// a write returns only once the write-ahead log (WAL) holding it is fsynced;
// concurrent writers share one fsync (pebble's group commit). FsyncEverySec
// (the default): a write returns once the WAL holding it has been written to
// the OS, and a background goroutine fsyncs the WAL once a second. FsyncNo:
// as everysec, without the fsync; the OS writes back when it likes. Every
// policy survives a kill -9 of the process whole (the OS keeps what was
// written); only a power cut or an OS crash loses the writes not yet
// fsynced: none under always, up to about a second under everysec.
//
// How: every commit asks pebble for a WAL sync, which makes pebble's WAL
// goroutine write the commit out at once (a commit without a sync request
// may wait in pebble's own buffer, which a kill -9 loses: measured, 526 of
// 3,529 acknowledged writes). Under everysec and no, the file system below
// pebble turns the WAL's sync into a no-op, and the real fsync is the
// background goroutine's (everysec) or the WAL file's Close.
//
// A caller that holds a lock while it writes (a bucket applies a write to
// the store and to its memory under its write lock) uses
// [Store.ApplyNoWait], releases the lock and then calls [Waiter.Wait], so
// that it does not hold the lock during the sync.
//
// Writes are committed in groups: ApplyNoWait adds the write to the open
// group, and the first of its writers to call Wait commits that group, as
// one batch and one WAL record, after every group before it, while the
// next group fills with the writes that arrive meanwhile. Pebble's commit
// costs about as much as a small batch's inserts into its memtable, so
// under load (many connections, pipelines) this is what makes a durable
// write cheap: HSET with redis-benchmark -P 16 ran 1.5x faster than with
// a commit per write, and 1.15x to 1.35x faster again with each group
// committed as one log record. Groups commit in the order their writers joined, so
// the engine sees each bucket's writes in the order its lock gave them. A
// group that a write would take past largeBatch is closed; a large write
// is a group of its own.
//
// # Damage and failures
//
// After a crash, Open recovers the WAL up to the last whole write and logs
// a torn tail. Damage recovery may not repair (a corrupt table, MANIFEST or
// WAL record followed by good ones) makes Open, [Store.LoadAll] or [Check]
// fail with an error that wraps [ErrCorrupt] and names the file: never a
// silent loss.
//
// When a write or sync of the store's files fails (a full disk), the store
// fences itself: nothing more reaches the disk and every write fails with an
// error wrapping [ErrWriteFailed]. Pebble is not told: it treats a failed
// WAL write as fatal (it panics at the next WAL rotation) and stalls its
// writers on a memtable it cannot flush. So the file system below it
// diverts its writes into memory until the store closes it to recover, and
// the store decides which commits failed from the WAL records it saw
// written (and, for FsyncAlways, fsynced) before the fault. While fenced,
// a compaction waits until the engine closes, then fails. The daemon's
// reads (from memory) go on;
// the store's own reads fail until it has recovered, since its engine may
// still hold the writes that failed. A later write or read (or the
// everysec background loop), at most once per Options.RetryInterval, tries
// to recover: it checks that the disk takes writes again (a probe file as
// large as the WAL plus 1 MiB), closes the engine, cuts from the WAL what
// was written but never fsynced (FsyncAlways and FsyncEverySec), reopens
// from the disk and replays the FsyncEverySec writes acknowledged since the
// last good fsync. A write whose [Waiter.Wait] failed was never
// acknowledged and is not in the store once it has recovered; every
// acknowledged write is. If the process dies before that recovery, a
// failed write that reached the WAL (its fsync failed, not its write) may
// be found there at the next start: as with any database whose fsync
// failed, its outcome is unknown, never a lost acknowledged write.
// [Options].Faults injects such failures in tests.
//
// # Caveats
//
// Only one Store may use a directory at a time ([ErrLocked]). Checkpoints
// hard-link the engine's files when the target is on the same file system.
// Damage in a table is found by the read that meets it ([Store.LoadAll] at
// start-up, or [Check]), not by Open, which reads only the MANIFEST and the
// WAL. If the disk fails again while a recovery reopens the engine, the
// fence goes up inside pebble's Open, and a later attempt closes that
// engine and tries again.
package store
