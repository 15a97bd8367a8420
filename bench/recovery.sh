#!/usr/bin/env bash
# recovery.sh: kv's restart on a full data directory.
#
# Builds kv, starts it on a fresh data directory (--fsync no, to fill it
# quickly), writes BUCKETS hashes of KEYS fields each (16-byte values)
# through redis-cli --pipe, reads every hash once (so every bucket is in
# memory), and reports kv's RSS. Then stops kv (SIGTERM), starts it again
# and reports how long it took to be ready (from exec to a PING answered;
# kv's own log line gives the recovery time), its RSS once ready, how long
# reading every hash once more takes (each bucket is loaded at its first
# use), and its RSS then. Last, after one more restart, how long deleting
# half the hashes takes when each DEL is followed by the first read of
# another (every drop and load meet the store), against the reads alone.
#
# Usage: bench/recovery.sh   Environment: BUCKETS (10000), KEYS (100),
#   KV_PORT (16381).
set -euo pipefail

BUCKETS=${BUCKETS:-10000}
KEYS=${KEYS:-100}
KV_PORT=${KV_PORT:-16381}

root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
pid=""
cleanup() {
	if [ -n "$pid" ]; then
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

rss() { awk '/VmRSS/ { printf "%.0f MiB", $2 / 1024 }' "/proc/$1/status"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f s", b - a }'; }

start() {
	"$work/kv" --resp-addr "127.0.0.1:$KV_PORT" --data-dir "$work/data" --fsync no --log-format json 2>>"$work/kv.log" &
	pid=$!
	until redis-cli -p "$KV_PORT" PING >/dev/null 2>&1; do sleep 0.01; done
}

# resp: RESP commands, for each bucket, from a generator of its arguments.
resp() { # write|read|delete
	python3 - "$1" "$BUCKETS" "$KEYS" <<'PY'
import sys
mode, buckets, keys = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
out = sys.stdout
for b in range(buckets):
    name = "bucket:%d" % b
    cmds = []
    if mode == "write":
        args = ["HSET", name]
        for k in range(keys):
            args += ["field:%d" % k, "value-%010d" % (b * keys + k)]
        cmds.append(args)
    elif mode == "read":
        cmds.append(["HLEN", name])
    elif b < buckets // 2:  # delete: DEL one, then the first read of another
        cmds.append(["DEL", name])
        cmds.append(["HLEN", "bucket:%d" % (buckets // 2 + b)])
    for args in cmds:
        parts = ["*%d\r\n" % len(args)] + ["$%d\r\n%s\r\n" % (len(a), a) for a in args]
        out.write("".join(parts))
PY
}

echo "building kv..." >&2
(cd "$root" && go build -o "$work/kv" ./cmd/kv)
resp write >"$work/write.resp"
resp read >"$work/read.resp"
resp delete >"$work/delete.resp"

start
t=$(now)
redis-cli -p "$KV_PORT" --pipe <"$work/write.resp" >/dev/null
echo "wrote $BUCKETS buckets x $KEYS keys in $(since "$t")"
redis-cli -p "$KV_PORT" --pipe <"$work/read.resp" >/dev/null
echo "before the restart (every bucket in memory): RSS $(rss "$pid"), DBSIZE $(redis-cli -p "$KV_PORT" DBSIZE)"
kill -TERM "$pid"
wait "$pid" || true
echo "data directory: $(du -sh "$work/data" | cut -f1)"

t=$(now)
start
echo "restart: ready (PING answered) after $(since "$t"); RSS $(rss "$pid")"
grep '"kv: data directory recovered"' "$work/kv.log" | tail -1
t=$(now)
redis-cli -p "$KV_PORT" --pipe <"$work/read.resp" >/dev/null
echo "first read of every bucket (lazy loads): $(since "$t"); RSS $(rss "$pid"); DBSIZE $(redis-cli -p "$KV_PORT" DBSIZE)"

kill -TERM "$pid"
wait "$pid" || true
start
t=$(now)
redis-cli -p "$KV_PORT" --pipe <"$work/delete.resp" >/dev/null
echo "after another restart, $((BUCKETS / 2)) DELs, each followed by the first read of another bucket: $(since "$t"); DBSIZE $(redis-cli -p "$KV_PORT" DBSIZE)"
