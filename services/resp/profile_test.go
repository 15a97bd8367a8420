package resp

import (
	"net"
	"os"
	"os/exec"
	"testing"
)

// TestProfileWithRedisBenchmark runs redis-benchmark against an in-process
// server, for profiling the hot path:
//
//	KV_PROFILE=1 go test ./services/resp/ -run ProfileWithRedisBenchmark -v -cpuprofile cpu.out
//	go tool pprof -top resp.test cpu.out
//
// KV_PROFILE is the pipeline depth (-P). Without it the test is skipped.
func TestProfileWithRedisBenchmark(t *testing.T) {
	pipeline := os.Getenv("KV_PROFILE")
	if pipeline == "" {
		t.Skip("set KV_PROFILE to the pipeline depth to run redis-benchmark")
	}
	ts := start(t, Config{})
	_, port, err := net.SplitHostPort(ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range [][]string{{"HSET", "h", "f:__rand_int__", "v"}, {"HGET", "h", "f:__rand_int__"}} {
		args := append([]string{"-p", port, "-c", "50", "-n", "200000", "-r", "100000", "-P", pipeline, "-q"}, cmd...)
		out, err := exec.Command("redis-benchmark", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("redis-benchmark: %v\n%s", err, out)
		}
		t.Logf("%s", out[max(0, len(out)-80):])
	}
}
