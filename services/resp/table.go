package resp

// commandTable registers every command kv serves. Each entry gives the
// arity (Redis's convention), flags and key positions that COMMAND
// reports; arity is checked before the handler runs.
func (s *Server) commandTable() mux {
	m := mux{}
	add := func(name string, arity, flags, first, last, step int, group, doc string, fn handlerFunc) {
		m.handle(&command{name: name, arity: arity, flags: flags, first: first, last: last, step: step, group: group, doc: doc, fn: fn})
	}
	noAuth := flagNoAuth
	// Connection and server.
	add("ping", -1, flagPubSub, 0, 0, 0, "connection", "Returns the server's liveliness response.", s.ping)
	add("echo", 2, 0, 0, 0, 0, "connection", "Returns the given string.", s.echo)
	add("quit", -1, noAuth|flagPubSub|flagNotQueued, 0, 0, 0, "connection", "Closes the connection.", s.quit)
	add("select", 2, 0, 0, 0, 0, "connection", "Changes the selected database (only 0 exists).", s.selectDB)
	add("hello", -1, noAuth, 0, 0, 0, "connection", "Handshakes with the server (RESP2 only).", s.hello)
	add("auth", -2, noAuth, 0, 0, 0, "connection", "Authenticates the connection.", s.auth)
	add("client", -2, 0, 0, 0, 0, "connection", "CLIENT ID, KILL, GETNAME, SETNAME, SETINFO, INFO, LIST.", s.client)
	add("reset", 1, noAuth|flagPubSub|flagNotQueued, 0, 0, 0, "connection", "Resets the connection.", s.reset)
	add("command", -1, 0, 0, 0, 0, "server", "Returns information about commands (COMMAND, COUNT, DOCS, INFO, LIST).", s.commandCmd)
	add("info", -1, 0, 0, 0, 0, "server", "Returns information and statistics about the server.", s.info)
	add("config", -2, flagAdmin, 0, 0, 0, "server", "CONFIG GET and SET of a few parameters; CONFIG RESETSTAT.", s.config)
	add("dbsize", 1, 0, 0, 0, 0, "server", "Returns the number of keys (buckets).", s.dbsize)
	add("flushall", -1, flagWrite|flagLong, 0, 0, 0, "server", "Deletes every bucket.", s.flushall)
	add("flushdb", -1, flagWrite|flagLong, 0, 0, 0, "server", "Deletes every bucket.", s.flushall)
	add("save", 1, flagAdmin|flagOwnGoroutine, 0, 0, 0, "server", "Writes a checkpoint of the data directory.", s.save)
	add("bgsave", -1, flagAdmin, 0, 0, 0, "server", "Writes a checkpoint of the data directory in the background.", s.bgsave)
	add("lastsave", 1, 0, 0, 0, 0, "server", "Returns the Unix time of the last checkpoint.", s.lastsave)
	add("time", 1, 0, 0, 0, 0, "server", "Returns the server's time: Unix seconds and microseconds.", s.timeCmd)
	add("memory", -2, flagLong, 0, 0, 0, "server", "MEMORY USAGE: an estimate of a key's memory.", s.memory)
	add("latency", -2, flagAdmin, 0, 0, 0, "server", "LATENCY HISTOGRAM: each command's calls by latency (the latency monitor is off).", s.latency)
	add("slowlog", -2, flagAdmin, 0, 0, 0, "server", "SLOWLOG GET, LEN, RESET: the commands that ran slowest.", s.slowlogCmd)
	add("role", 1, 0, 0, 0, 0, "server", "Returns the replication role: master, without replicas.", s.role)
	add("monitor", 1, flagAdmin|flagOwnGoroutine, 0, 0, 0, "server", "Streams every command the server runs (admin commands excepted).", s.monitorCmd)
	add("shutdown", -1, flagAdmin|flagOwnGoroutine, 0, 0, 0, "server", "Stops the server (SAVE: after a checkpoint), when the program that runs it allows.", s.shutdownCmd)
	add("debug", -2, flagAdmin|flagProtected, 0, 0, 0, "server", "DEBUG CRASH-BUCKET <key>, when enabled.", s.debug)
	// Cluster: kv is one node without cluster support, and answers as a
	// Redis with cluster-enabled no does, so that clients probing for a
	// cluster (CLUSTER INFO, CLUSTER SLOTS, READONLY) get Redis's answer.
	add("cluster", -2, 0, 0, 0, 0, "cluster", "Answers that cluster support is disabled.", s.noCluster)
	add("readonly", 1, 0, 0, 0, 0, "cluster", "Answers that cluster support is disabled.", s.noCluster)
	add("readwrite", 1, 0, 0, 0, 0, "cluster", "Answers that cluster support is disabled.", s.noCluster)
	add("asking", 1, 0, 0, 0, 0, "cluster", "Answers that cluster support is disabled.", s.noCluster)
	// Transactions.
	add("multi", 1, flagNotQueued, 0, 0, 0, "transactions", "Starts a transaction: the commands until EXEC are queued.", s.multi)
	add("exec", 1, flagNotQueued|flagExclusive, 0, 0, 0, "transactions", "Runs the queued commands, one after the other.", s.execTx)
	add("discard", 1, flagNotQueued, 0, 0, 0, "transactions", "Drops the queued commands.", s.discard)
	add("watch", -2, flagNotQueued, 1, -1, 1, "transactions", "Watches keys: EXEC fails if any changes before it.", s.watch)
	add("unwatch", 1, 0, 0, 0, 0, "transactions", "Forgets the watched keys.", s.unwatch)
	// Keys: each key is a bucket.
	add("exists", -2, 0, 1, -1, 1, "generic", "Counts the keys that exist.", s.exists)
	add("touch", -2, 0, 1, -1, 1, "generic", "Counts the keys that exist (kv keeps no access times).", s.exists)
	add("randomkey", 1, 0, 0, 0, 0, "generic", "Returns a key picked at random.", s.randomkey)
	add("del", -2, flagWrite, 1, -1, 1, "generic", "Deletes keys.", s.del)
	add("unlink", -2, flagWrite, 1, -1, 1, "generic", "Deletes keys.", s.del)
	add("type", 2, 0, 1, 1, 1, "generic", "Returns the type of a key: hash or none.", s.typ)
	add("keys", 2, 0, 0, 0, 0, "generic", "Returns the keys that match a pattern.", s.keys)
	add("scan", -2, 0, 0, 0, 0, "generic", "Iterates over the keys.", s.scan)
	add("wait", 3, 0, 0, 0, 0, "generic", "Answers 0 replicas at once: kv has none.", s.wait)
	add("waitaof", 4, flagLong, 0, 0, 0, "generic", "Returns once the client's writes are on disk (a durable store).", s.waitaof)
	add("rename", 3, flagWrite, 1, 2, 1, "generic", "Renames a key, overwriting the destination.", s.rename)
	add("renamenx", 3, flagWrite, 1, 2, 1, "generic", "Renames a key only when the new name does not exist.", s.renamenx)
	add("object", -2, 0, 0, 0, 0, "generic", "OBJECT ENCODING, REFCOUNT, FREQ, IDLETIME: a key's internals, as far as kv has them.", s.object)
	add("copy", -3, flagWrite, 1, 2, 1, "generic", "Copies the value of a key to a new key.", s.copyCmd)
	// kv's keys never expire: the answers Redis gives for a key without a
	// timeout, for the tools that ask (GUIs read TTL of every key).
	add("ttl", 2, 0, 1, 1, 1, "generic", "Returns -1 (keys do not expire) or -2 for a missing key.", s.noExpiry)
	add("pttl", 2, 0, 1, 1, 1, "generic", "Returns -1 (keys do not expire) or -2 for a missing key.", s.noExpiry)
	add("expiretime", 2, 0, 1, 1, 1, "generic", "Returns -1 (keys do not expire) or -2 for a missing key.", s.noExpiry)
	add("pexpiretime", 2, 0, 1, 1, 1, "generic", "Returns -1 (keys do not expire) or -2 for a missing key.", s.noExpiry)
	add("persist", 2, flagWrite, 1, 1, 1, "generic", "Returns 0: no key has a timeout to remove.", s.persist)
	// Hashes: a bucket is a hash.
	add("hset", -4, flagWrite, 1, 1, 1, "hash", "Sets fields; creates the key.", s.hset)
	add("hmset", -4, flagWrite, 1, 1, 1, "hash", "Sets fields; creates the key.", s.hset)
	add("hsetnx", 4, flagWrite, 1, 1, 1, "hash", "Sets a field only if it does not exist.", s.hsetnx)
	add("hget", 3, 0, 1, 1, 1, "hash", "Returns the value of a field.", s.hget)
	add("hmget", -3, 0, 1, 1, 1, "hash", "Returns the values of fields.", s.hmget)
	add("hdel", -3, flagWrite, 1, 1, 1, "hash", "Deletes fields (the key stays, possibly empty).", s.hdel)
	add("hexists", 3, 0, 1, 1, 1, "hash", "Reports whether a field exists.", s.hexists)
	add("hlen", 2, 0, 1, 1, 1, "hash", "Returns the number of fields.", s.hlen)
	add("hstrlen", 3, 0, 1, 1, 1, "hash", "Returns the length of a field's value.", s.hstrlen)
	add("hkeys", 2, 0, 1, 1, 1, "hash", "Returns the fields.", s.hkeys)
	add("hvals", 2, 0, 1, 1, 1, "hash", "Returns the values.", s.hvals)
	add("hgetall", 2, 0, 1, 1, 1, "hash", "Returns the fields and values.", s.hgetall)
	add("hincrby", 4, flagWrite, 1, 1, 1, "hash", "Increments a field by an integer.", s.hincrby)
	add("hincrbyfloat", 4, flagWrite, 1, 1, 1, "hash", "Increments a field by a float.", s.hincrbyfloat)
	add("hscan", -3, 0, 1, 1, 1, "hash", "Iterates over fields and values.", s.hscan)
	add("hrandfield", -2, 0, 1, 1, 1, "hash", "Returns random fields.", s.hrandfield)
	// Lifecycle events.
	add("subscribe", -2, flagPubSub|flagOwnGoroutine, 0, 0, 0, "pubsub", "Listens to channels (kv:created, kv:exited, kv:bucket:<key>).", s.subscribe)
	add("psubscribe", -2, flagPubSub|flagOwnGoroutine, 0, 0, 0, "pubsub", "Listens to channels that match patterns.", s.subscribe)
	add("unsubscribe", -1, flagPubSub, 0, 0, 0, "pubsub", "Stops listening to channels.", s.unsubscribe)
	add("pubsub", -2, 0, 0, 0, 0, "pubsub", "PUBSUB CHANNELS, NUMSUB, NUMPAT: the channels and patterns subscribed to.", s.pubsub)
	add("punsubscribe", -1, flagPubSub, 0, 0, 0, "pubsub", "Stops listening to patterns.", s.unsubscribe)
	// Subcommands, with Redis's arities (CONFIG's that kv does not serve
	// are known, and refused as they run).
	m["client"].subs = []subcommand{{"id", 2}, {"kill", -3}, {"getname", 2}, {"setname", 3}, {"info", 2}, {"list", -2},
		{"help", 2}, {"setinfo", 4}, {"no-evict", 3}, {"no-touch", 3}}
	m["command"].subs = []subcommand{{"count", 2}, {"list", -2}, {"info", -2}, {"docs", -2}, {"getkeys", -4}}
	m["config"].subs = []subcommand{{"get", -3}, {"set", -4}, {"resetstat", 2}, {"rewrite", 2}, {"help", 2}}
	m["pubsub"].subs = []subcommand{{"channels", -2}, {"numsub", -2}, {"numpat", 2}, {"help", 2}, {"shardchannels", -2}, {"shardnumsub", -2}}
	m["latency"].subs = []subcommand{{"doctor", 2}, {"graph", 3}, {"help", 2}, {"histogram", -2}, {"history", 3}, {"latest", 2}, {"reset", -2}}
	m["slowlog"].subs = []subcommand{{"get", -2}, {"len", 2}, {"reset", 2}, {"help", 2}}
	m["object"].subs = []subcommand{{"encoding", 3}, {"freq", 3}, {"idletime", 3}, {"refcount", 3}, {"help", 2}}
	m["cluster"].subs = []subcommand{{"addslots", -3}, {"addslotsrange", -4}, {"bumpepoch", 2}, {"count-failure-reports", 3},
		{"countkeysinslot", 3}, {"delslots", -3}, {"delslotsrange", -4}, {"failover", -2}, {"flushslots", 2}, {"forget", 3},
		{"getkeysinslot", 4}, {"help", 2}, {"info", 2}, {"keyslot", 3}, {"links", 2}, {"meet", -4}, {"myid", 2}, {"nodes", 2},
		{"replicas", 3}, {"replicate", 3}, {"reset", -2}, {"saveconfig", 2}, {"set-config-epoch", 3}, {"setslot", -4},
		{"shards", 2}, {"slaves", 3}, {"slots", 2}}
	m["memory"].subs = []subcommand{{"usage", -3}, {"help", 2}, {"doctor", 2}, {"stats", 2}, {"purge", 2}, {"malloc-stats", 2}}
	// Types kv does not have: WRONGTYPE on a key, as Redis answers.
	nothing := func(c *conn) { c.null() }
	zero := func(c *conn) { c.integer(0) }
	none := func(c *conn) { c.array(0) }
	noMembers := func(c *conn) { c.setLen(0) } // RESP3's empty set, as Redis's SMEMBERS
	for _, t := range []struct {
		name  string
		arity int
		group string // Redis's: COMMAND DOCS and the ACL categories show it
		empty func(*conn)
		check func(*conn, [][]byte) bool // the arguments, checked before the key as Redis does
	}{
		{"get", 2, "string", nothing, nil}, {"strlen", 2, "string", zero, nil}, {"llen", 2, "list", zero, nil},
		{"lrange", 4, "list", none, rangeIndexes}, {"scard", 2, "set", zero, nil}, {"smembers", 2, "set", noMembers, nil},
		{"zcard", 2, "sorted-set", zero, nil}, {"zrange", -4, "sorted-set", none, zrangeArgs},
		{"set", -3, "string", nil, nil}, {"incr", 2, "string", nil, nil}, {"append", 3, "string", nil, nil},
		{"lpush", -3, "list", nil, nil}, {"rpush", -3, "list", nil, nil}, {"sadd", -3, "set", nil, nil},
		{"zadd", -4, "sorted-set", nil, nil},
	} {
		flags := 0
		if t.empty == nil {
			flags = flagWrite
		}
		add(t.name, t.arity, flags, 1, 1, 1, t.group, "Not a hash command: WRONGTYPE on an existing key.", s.wrongType(t.empty, t.check))
	}
	for _, cmd := range m {
		cmd.subStats = make([]cmdStats, len(cmd.subs))
		for _, sc := range cmd.subs {
			cmd.subNames = append(cmd.subNames, cmd.name+"|"+sc.name)
		}
	}
	for name, syn := range syntax {
		cmd, ok := m[name]
		if !ok {
			panic("resp: syntax for an unknown command " + name)
		}
		args, err := parseSyntax(syn)
		if err != nil {
			panic(err)
		}
		cmd.args = args
	}
	return m
}
