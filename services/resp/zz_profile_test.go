package resp

import (
	"os"
	"os/exec"
	"testing"
)

func TestProfileWithRedisBenchmark(t *testing.T) {
	if os.Getenv("KV_PROFILE") == "" {
		t.Skip()
	}
	ts := start(t, Config{})
	_, port, _ := splitHostPort(ts.addr)
	for _, args := range [][]string{
		{"-p", port, "-c", "50", "-n", "200000", "-r", "100000", "-P", os.Getenv("KV_PROFILE"), "-q", "HSET", "h", "f:__rand_int__", "v"},
		{"-p", port, "-c", "50", "-n", "200000", "-r", "100000", "-P", os.Getenv("KV_PROFILE"), "-q", "HGET", "h", "f:__rand_int__"},
	} {
		out, err := exec.Command("redis-benchmark", args...).CombinedOutput()
		if err != nil {
			t.Fatal(err)
		}
		t.Log(string(out[len(out)-80:]))
	}
}

func splitHostPort(a string) (string, string, error) {
	for i := len(a) - 1; i >= 0; i-- {
		if a[i] == ':' {
			return a[:i], a[i+1:], nil
		}
	}
	return a, "", nil
}
