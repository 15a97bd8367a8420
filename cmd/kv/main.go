// Command kv is the kv daemon: kv's supervision tree with its network
// listeners, run until SIGINT or SIGTERM (SIGHUP is ignored, as Redis
// ignores it).
//
//	go run ./cmd/kv                  # Redis protocol on 127.0.0.1:6380, data in ./kv-data
//	kv --help                        # every flag, its variable and default
//	redis-cli -p 6380 HSET cart apples 3
//	kv check ./kv-data               # verify a data directory offline
//
// Every flag can also be given as an environment variable (--resp-addr is
// KV_RESP_ADDR); a flag wins over its variable, which wins over the default.
//
// Exit codes: 0 after a clean stop; 1 when the tree fails or does not stop
// in time; 2 for a usage error (an unknown flag, a bad value); 3 for a
// configuration kv refuses (a non-loopback address without a password, a
// password file that is unreadable, empty or of more than one line); 4 when the listener cannot be opened; 5 when
// the data directory is in use by another kv; 6 when the data directory
// cannot be opened or is damaged (kv check DIR says where).
//
// Data is durable by default: --data-dir (default ./kv-data) holds it,
// --fsync always|everysec|no (default everysec) says when a write reaches
// the disk, as Redis's appendfsync; --in-memory keeps nothing on disk.
package main

import (
	"os"
	"runtime"
)

func main() {
	os.Exit(run(os.Args[1:], os.Environ(), os.Stdout, os.Stderr, runtime.GOMAXPROCS))
}
