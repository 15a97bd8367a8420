package resp

import (
	"net"
	"os"
	"os/exec"
	"testing"

	"github.com/kvproject/kv/internal/store"
)

// TestProfileWithRedisBenchmark runs redis-benchmark against an in-process
// server, for profiling the hot path:
//
//	KV_PROFILE=1 go test ./services/resp/ -run ProfileWithRedisBenchmark -v -cpuprofile cpu.out
//	go tool pprof -top resp.test cpu.out
//
// KV_PROFILE is the pipeline depth (-P). Without it the test is skipped.
// KV_PROFILE_FSYNC (always, everysec or no) profiles HSET on a durable
// server with that policy instead. KV_PROFILE_REQUESTS sets -n (200000).
// KV_PROFILE_NEW_KEYS=1 profiles HSET of a new key at each request
// (HSET k:__rand_int__ f v, -r 10000000): a bucket created each time.
func TestProfileWithRedisBenchmark(t *testing.T) {
	pipeline := os.Getenv("KV_PROFILE")
	if pipeline == "" {
		t.Skip("set KV_PROFILE to the pipeline depth to run redis-benchmark")
	}
	cmds := [][]string{{"HSET", "h", "f:__rand_int__", "v"}, {"HGET", "h", "f:__rand_int__"}}
	keyspace := "100000"
	if os.Getenv("KV_PROFILE_NEW_KEYS") == "1" {
		cmds, keyspace = [][]string{{"HSET", "k:__rand_int__", "f", "v"}}, "10000000"
	}
	var addr string
	if fsync := os.Getenv("KV_PROFILE_FSYNC"); fsync != "" {
		policy, err := store.ParseFsync(fsync)
		if err != nil {
			t.Fatal(err)
		}
		addr = startDurable(t, t.TempDir(), store.Options{Fsync: policy}).addr
		cmds = cmds[:1]
	} else {
		addr = start(t, Config{}).addr
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	requests := os.Getenv("KV_PROFILE_REQUESTS")
	if requests == "" {
		requests = "200000"
	}
	for _, cmd := range cmds {
		args := append([]string{"-p", port, "-c", "50", "-n", requests, "-r", keyspace, "-P", pipeline, "-q"}, cmd...)
		out, err := exec.Command("redis-benchmark", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("redis-benchmark: %v\n%s", err, out)
		}
		t.Logf("%s", out[max(0, len(out)-80):])
	}
}
