package resp

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// clientFields parses one line of CLIENT LIST or CLIENT INFO, as client
// libraries do: space-separated key=value pairs.
func clientFields(t *testing.T, line string) map[string]string {
	t.Helper()
	fields := map[string]string{}
	for _, kv := range strings.Fields(line) {
		k, v, ok := strings.Cut(kv, "=")
		require.True(t, ok, "field %q of %q", kv, line)
		fields[k] = v
	}
	return fields
}

// clientLines parses CLIENT LIST's reply into one map per client, by id.
func clientLines(t *testing.T, text string) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	for _, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if l == "" {
			continue
		}
		f := clientFields(t, l)
		out[f["id"]] = f
	}
	return out
}

// TestClientInfoHasTheFieldsClientsParse checks that CLIENT INFO and
// CLIENT LIST carry the fields client libraries read from Redis's lines:
// redis-py's client_info() reads id, age, idle, db, sub, psub, multi,
// qbuf, qbuf-free, obl, argv-mem, oll, omem and tot-mem as integers and
// raises KeyError when one is missing; go-redis reads flags and multi.
func TestClientInfoHasTheFieldsClientsParse(t *testing.T) {
	ts := start(t, Config{})
	rc := ts.client(t)
	ctx := context.Background()

	mine, err := rc.Do(ctx, "CLIENT", "INFO").Text()
	require.NoError(t, err)
	f := clientFields(t, mine)
	for _, k := range []string{"id", "age", "idle", "db", "sub", "psub", "multi", "qbuf", "qbuf-free", "obl", "argv-mem", "oll", "omem", "tot-mem"} {
		require.Contains(t, f, k, "CLIENT INFO: %q", mine)
		_, err := strconv.ParseInt(f[k], 10, 64)
		assert.NoError(t, err, "%s=%q is an integer", k, f[k])
	}
	assert.Equal(t, "N", f["flags"], "a plain client's flags, as Redis's")
	assert.Equal(t, "-1", f["multi"], "no client is in a MULTI: Redis's -1")
	assert.Equal(t, "0", f["idle"])
	info, err := rc.ClientInfo(ctx).Result()
	require.NoError(t, err)
	assert.Equal(t, -1, info.Multi)

	// A subscriber has the P flag; a client that sent nothing for a
	// second is idle for a second.
	sub := ts.raw(t)
	sub.send("CLIENT ID\r\n")
	subID := strings.TrimPrefix(sub.line(), ":")
	sub.send("SUBSCRIBE kv:created\r\n")
	for range 6 {
		sub.line()
	}
	quiet := ts.raw(t)
	quiet.send("CLIENT ID\r\n")
	quietID := strings.TrimPrefix(quiet.line(), ":")
	// The quiet client's idle reaches 1 once a second has passed since
	// it last sent, while the listing client, which sends, stays at 0.
	var clients map[string]map[string]string
	require.Eventually(t, func() bool {
		list, err := rc.ClientList(ctx).Result()
		require.NoError(t, err)
		clients = clientLines(t, list)
		require.Contains(t, clients, quietID)
		idle, err := strconv.Atoi(clients[quietID]["idle"])
		require.NoError(t, err)
		return idle >= 1
	}, 10*time.Second, 50*time.Millisecond)
	require.Contains(t, clients, subID)
	assert.Equal(t, "P", clients[subID]["flags"], "a subscriber's flags")
	assert.Equal(t, "1", clients[subID]["sub"])
	assert.Equal(t, "N", clients[quietID]["flags"])
	mineNow := clients[clientFields(t, mine)["id"]]
	require.NotNil(t, mineNow)
	assert.Equal(t, "0", mineNow["idle"], "a client that just sent is not idle")
	idle, _ := strconv.Atoi(clients[quietID]["idle"])
	age, err := strconv.Atoi(clients[quietID]["age"])
	require.NoError(t, err)
	assert.LessOrEqual(t, idle, age, "idle counts from the last request, which came after the connection")
}
