// Package resp is kv's Redis protocol front end: a suture.Service that lets
// redis-cli, redis-benchmark, go-redis and every other Redis client use kv.
// A bucket is a Redis hash.
//
// Requests are parsed by github.com/tidwall/redcon (ReadNextCommand, RESP
// and inline commands, so nc and telnet work) and replies are encoded with
// its Append functions, in RESP2 or, after HELLO 3, RESP3 (maps, sets,
// nulls, pushes and verbatim text where Redis 7 sends them; a RESP3
// subscriber may run any command), on a connection loop of this package that reuses
// its buffers: HGET allocates nothing, pipelined replies go out in one
// write. Commands are registered once, in [New], in a table that refuses
// duplicates and also answers COMMAND.
//
// # Commands
//
// Connection and server: PING, ECHO, QUIT, SELECT 0, HELLO [2|3], AUTH,
// CLIENT ID|KILL|GETNAME|SETNAME|SETINFO|INFO|LIST, COMMAND [COUNT|DOCS|INFO|
// LIST|GETKEYS], INFO [server|clients|memory|persistence|stats|replication|
// cpu|commandstats|errorstats|cluster|keyspace], ROLE (master: kv does not
// replicate), CONFIG GET, CONFIG SET (maxclients, timeout and the slow
// log), CONFIG RESETSTAT, MEMORY USAGE, SLOWLOG GET|LEN|RESET, MONITOR,
// DBSIZE, TIME, FLUSHALL, FLUSHDB, RESET, DEBUG CRASH-BUCKET (with
// Config.EnableDebugCommand), SHUTDOWN (with Config.Shutdown), SAVE,
// BGSAVE and LASTSAVE (with Config.Backups: checkpoints of the durable
// store); CLUSTER, READONLY, READWRITE and ASKING answer as Redis without
// cluster support.
// Keys: EXISTS, TOUCH, DEL, UNLINK, TYPE, KEYS, SCAN, RANDOMKEY, RENAME,
// WAIT (0 replicas, at once), WAITAOF (with a Backups that is a Syncer);
// TTL, PTTL,
// EXPIRETIME, PEXPIRETIME and PERSIST answer as Redis does for keys
// without a timeout (kv's keys never expire). Hashes: HSET, HMSET,
// HSETNX, HGET, HMGET, HDEL, HEXISTS, HLEN, HSTRLEN, HKEYS, HVALS, HGETALL,
// HINCRBY, HINCRBYFLOAT, HSCAN, HRANDFIELD. Events: SUBSCRIBE, PSUBSCRIBE,
// UNSUBSCRIBE, PUNSUBSCRIBE, PUBSUB CHANNELS|NUMSUB|NUMPAT. Transactions:
// MULTI, EXEC, DISCARD, WATCH, UNWATCH. Read commands of other Redis types (GET,
// LLEN, SMEMBERS...) answer WRONGTYPE on an existing key, as Redis does, and the
// empty answer on a missing one; their writes (SET, LPUSH...) are refused.
//
// Departures from Redis: a hash that loses its last field stays, empty,
// until DEL (kv's buckets are created and deleted explicitly, as the
// guide's CREATE does); RENAME switches the destination in one step, but
// the source reads as absent an instant before the destination shows its
// pairs (with a durable store the move is one write on disk). SCAN's COUNT
// and TYPE are honoured; a SCAN step costs O(log buckets + COUNT) (the
// registry's ordered index), an HSCAN step O(log fields + COUNT) once the
// bucket has sorted its fields in cursor order (the first step sorts
// them), without copying the hash.
//
// MULTI queues the commands that follow until EXEC runs them one after the
// other, or DISCARD drops them, as in Redis: a command refused as it is
// queued (unknown, wrong number of arguments, an unknown subcommand or
// one with the wrong number of arguments, too large, or SUBSCRIBE,
// PSUBSCRIBE, MONITOR, SAVE and SHUTDOWN) makes EXEC answer EXECABORT, and
// a command that fails as it runs has its error among EXEC's replies,
// without rollback.
// An EXEC refused itself (with arguments, before AUTH) discards the
// transaction at once with EXECABORT and the reason, as Redis 7 does.
// As in Redis, no command of another client runs between EXEC's: EXEC
// holds the registry's TxLock alone, which every other command shares, as
// the line protocol's and HTTP's do; an embedding host that writes
// without it is not held back. EXEC's writes reach a durable store as one
// atomic write (Registry.HoldWrites), unless it flushes or loads a bucket
// (a RENAME whose source is stored but not in memory loads it), which
// commits what came before. WATCH makes EXEC run nothing (a null
// array) if a watched key's bucket changed since, whoever changed it:
// each bucket counts its writes (bucket.Version).
//
// Writes that touch several fields (HSET with several pairs, HSETNX,
// HINCRBY, HINCRBYFLOAT, HDEL) run in one bucket.Update, so they are
// atomic. HSET on a missing key creates the bucket with its fields as its
// first write (registry CreateWith: no one sees it empty, and a crash
// keeps both or neither). A bucket found ended but not yet forgotten is
// followed: a read or a write waits until the registry has forgotten it
// and looks the name up again (a write creates the bucket anew if there is
// none), and so does a command whose bucket ends between the lookup and
// the use; a name that leads to an ended bucket 8 times in a row gets
// "ERR the bucket ended while the command ran; try again".
//
// With a durable store under the registry, a write is answered once the
// store holds it under its fsync policy; a write the store fails is
// answered with an error reply ("ERR bucket <name>: store: write
// failed: ...") and is not kept. The durable writes of a pipeline are
// answered together: the connection runs them all, waits once for the
// disk, and only then sends their replies, each in its place (an error
// reply for a write that failed).
//
// # Event loop
//
// On Linux, unless Config.GoroutinePerClient is set, one goroutine waits
// on epoll for every client, reads what each ready client sent, runs its
// commands, and then writes the replies of all of them, as Redis's event
// loop does. A client that subscribes, monitors, runs SAVE or SHUTDOWN, or
// runs a command that may wait long (FLUSHALL, FLUSHDB, MEMORY, WAITAOF)
// is first handed to a goroutine of its own; elsewhere every client has
// one.
//
// # Lifecycle events
//
// The event manager's Created and Exited are published on the channels
// [ChannelCreated] (kv:created), [ChannelExited] (kv:exited) and
// [ChannelBucketPrefix]+name (kv:bucket:<name>, both events of one
// bucket), as a JSON [EventMessage]:
//
//	{"event":"created","bucket":"cart","bucket_base64":"Y2FydA==","id":7,"seq":12}
//	{"event":"exited","bucket":"cart","bucket_base64":"Y2FydA==","id":7,"seq":15,"reason":"panic","error":"bucket: panic: ..."}
//
// A subscriber has its own subscription to the event manager, with a
// bounded mailbox (Config.SubscriberMailbox, 1024 events). Publishing never
// waits for it, so writers are never slowed. The slow-subscriber rule: a
// client whose mailbox overflows (it would lose an event) or that does not
// take a message within Config.WriteTimeout (30 s) is disconnected; INFO
// counts it as slow_subscribers_disconnected. A client never misses an
// event silently: it gets them all, in order, or loses its connection.
//
// # Security and limits
//
// With Config.Password set, every command but AUTH, HELLO, QUIT and RESET
// answers "NOAUTH Authentication required." until the client
// authenticates; the password is compared in constant time. Limits, with
// their defaults: MaxClients 10000 (one more gets "ERR max number of
// clients reached" and is closed); MaxRequestBytes 64 MiB of one
// incomplete request, 64 KiB of an inline one or of a count or length
// line (as Redis), and about 160 KiB of one
// from a client that has not authenticated while a password is set (an
// error, then closed);
// MaxBulkLen 16 MiB per argument and MaxArgs 1048576 per command (an error
// reply, the connection stays); IdleTimeout 5 minutes (subscribers exempt);
// WriteTimeout 30 seconds; MaxReplyBytes 64 MiB of replies kept for a
// client that does not read them (client libraries send a whole pipeline
// before they read: the server reads on and runs its commands meanwhile,
// and past this bound reads nothing more from it until it reads). Going
// past a limit never touches other clients or any data. A command named
// POST or Host: (any case) closes the connection without a reply, as with
// Redis: it is a line of an HTTP request, which a web page can make a
// browser send to kv's port with commands in its body.
//
// # Stopping
//
// When Serve's context ends, the server stops accepting, lets each client
// finish the commands it had already sent and receive their replies, then
// closes it; clients still busy after ShutdownTimeout (5 s) are closed.
// Note that suture stops the children of a supervisor all at once: if the
// tree is cancelled as a whole, the buckets end while the listener is still
// finishing, and those last commands find their buckets gone. Add the
// server with services.Root's Add, as cmd/kv does: the root stops it, and
// waits for it, before the registry and the buckets.
//
// A listener that fails makes Serve return an error; suture restarts it,
// and it listens again on the same address, without touching any bucket.
package resp
