package resp

import (
	"net"
	"os"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/require"
)

// redisPy returns a Python 3 that has redis-py (Debian's python3-redis),
// or skips the test; with KV_REQUIRE_REDIS_PY=1 (as CI, which installs
// it, sets it) a missing one fails the test instead.
func redisPy(t *testing.T) string {
	t.Helper()
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		if path, err := exec.LookPath(py); err == nil && exec.Command(path, "-c", "import redis").Run() == nil {
			return path
		}
	}
	if os.Getenv("KV_REQUIRE_REDIS_PY") == "1" {
		t.Fatal("no python3 with redis-py (apt-get install python3-redis)")
	}
	t.Skip("no python3 with redis-py")
	return ""
}

// A client library of another language, redis-py, uses kv as it uses
// Redis: AUTH, hashes, keys, errors mapped to its exceptions, pipelines,
// transactions with WATCH, pub/sub of the lifecycle events, INFO and
// CONFIG GET (testdata/redispy_client.py).
func TestRedisPy(t *testing.T) {
	py := redisPy(t)
	ts := start(t, Config{Password: "s3cret"})
	_, port, err := net.SplitHostPort(ts.addr)
	require.NoError(t, err)
	out, err := exec.Command(py, "testdata/redispy_client.py", port, "s3cret").CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Equal(t, "OK\n", string(out))
}
