#!/usr/bin/env bash
# soak.sh: the daemon under a mixed load for a while, sampled as it goes,
# then checked for what a long-running process must not accumulate.
#
# Builds kv, starts it durable (--fsync everysec, a fresh data directory,
# the HTTP API on), and for DURATION seconds runs beside it:
#   - writers and readers: redis-benchmark -l, HSET and HGET of
#     b:__rand_int__ f:__rand_int__ (-r 1000: up to 1,000 buckets of
#     1,000 fields), and HINCRBY, pipelined by 4;
#   - bucket churn: HSET n:__rand_int__ f v and DEL n:__rand_int__
#     (-r 10000), so that buckets start and end all the time;
#   - connection churn: PING with a new connection for each request (-k 0);
#   - subscribers that come and go: redis-cli PSUBSCRIBE '*' (the
#     buckets' lifecycle events), each for a second;
#   - the HTTP API: a PUT of a bucket (create) and of a key, a GET of the
#     key, and a second of /v1/events, over and over;
#   - BGSAVE every minute (--keep-checkpoints 2).
# Every INTERVAL seconds it prints the daemon's goroutines, open files
# and resident memory (from its /metrics), its buckets, clients and data
# directory. Then it stops the load, waits for the clients to leave,
# sends FLUSHALL, and prints the same figures against those at the start:
# goroutines and open files must come back to about where they began, and
# the log must hold no error (its warnings are counted by message). It
# exits 1 if either fails, or if the daemon died.
#
# Usage: bench/soak.sh   (from anywhere in the repository)
# Environment: DURATION (600), INTERVAL (30), RESP_PORT (16381),
#   HTTP_PORT (16382), SLACK (20: the goroutines and files above the
#   start's that still pass), UNLOAD_IDLE (a duration such as 5s: kv runs
#   with --unload-idle, and buckets leave memory and come back all along;
#   empty, the default: off).
set -euo pipefail

DURATION=${DURATION:-600}
INTERVAL=${INTERVAL:-30}
RESP_PORT=${RESP_PORT:-16381}
HTTP_PORT=${HTTP_PORT:-16382}
SLACK=${SLACK:-20}
UNLOAD_IDLE=${UNLOAD_IDLE:-}

root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
kvpid="" loads=()

stop_loads() {
	for pid in ${loads[@]+"${loads[@]}"}; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in ${loads[@]+"${loads[@]}"}; do
		wait "$pid" 2>/dev/null || true
	done
	loads=()
}
cleanup() {
	local status=$?
	stop_loads
	if [ -n "$kvpid" ]; then
		kill "$kvpid" 2>/dev/null || true
		wait "$kvpid" 2>/dev/null || true
	fi
	if [ "$status" -eq 0 ]; then
		rm -rf "$work"
	else
		echo "kept for a look: $work (kv.log, the loads' load.*.err)" >&2
	fi
}
trap cleanup EXIT INT TERM

for tool in redis-cli redis-benchmark curl; do
	if ! command -v "$tool" >/dev/null; then
		echo "soak.sh needs $tool (apt-get install redis-tools curl)" >&2
		exit 2
	fi
done

echo "building kv..." >&2
(cd "$root" && go build -o "$work/kv" ./cmd/kv)
"$work/kv" --resp-addr "127.0.0.1:$RESP_PORT" --http-addr "127.0.0.1:$HTTP_PORT" \
	--data-dir "$work/data" --fsync everysec --keep-checkpoints 2 \
	${UNLOAD_IDLE:+--unload-idle "$UNLOAD_IDLE"} 2>"$work/kv.log" &
kvpid=$!
for _ in $(seq 1 300); do
	if curl -fs "http://127.0.0.1:$HTTP_PORT/readyz" >/dev/null 2>&1 && redis-cli -p "$RESP_PORT" PING >/dev/null 2>&1; then
		break
	fi
	sleep 0.1
done
curl -fs "http://127.0.0.1:$HTTP_PORT/readyz" >/dev/null || {
	echo "kv did not come up" >&2
	cat "$work/kv.log" >&2
	exit 1
}

# A daemon that does not answer a sample's requests within ANSWER seconds
# fails the soak: the failure of curl -m or of timeout ends the script
# (set -e).
ANSWER=30
# metric name: a value, without labels, of the /metrics the sample read.
metric() { awk -v m="$1" '$1 == m { print $2 }' <<<"$metrics"; }
cli() { timeout "$ANSWER" redis-cli -p "$RESP_PORT" "$@"; }
info() { cli INFO "$1" | tr -d '\r' | awk -F: -v f="$2" '$1 == f { print $2 }'; }
# sample elapsed: prints a line of figures, and leaves the goroutines and
# open files in g and f.
sample() {
	local metrics rss n c
	metrics=$(curl -fs -m "$ANSWER" "http://127.0.0.1:$HTTP_PORT/metrics")
	g=$(metric go_goroutines) f=$(metric process_open_fds)
	rss=$(metric process_resident_memory_bytes | awk '{ printf "%d", $1 / 1048576 }')
	n=$(cli DBSIZE) c=$(info clients connected_clients)
	printf '%8s %10s %10s %10s %9s %8s %10s\n' "$1" "$g" "$f" "$rss" "$n" "$c" "$(du -sm "$work/data" 2>/dev/null | cut -f1)"
}
header() { printf '%8s %10s %10s %10s %9s %8s %10s\n' "seconds" "goroutines" "open files" "RSS MiB" "buckets" "clients" "data MiB"; }

header
sample start
base_g=$g base_f=$f

# Each load's errors go to load.N.err; a load that ends before the soak
# does fails it (see alive).
names=()
load() { # name command...
	local name=$1
	shift
	"$@" >/dev/null 2>"$work/load.${#loads[@]}.err" &
	loads+=($!) names+=("$name")
}
bench() { load "redis-benchmark $*" redis-benchmark -p "$RESP_PORT" -l -q "$@"; }
alive() {
	local i ok=0
	for i in "${!loads[@]}"; do
		if ! kill -0 "${loads[$i]}" 2>/dev/null; then
			echo "a load ended early: ${names[$i]}" >&2
			tr '\r' '\n' <"$work/load.$i.err" | grep -v '^ *$' | tail -5 >&2
			ok=1
		fi
	done
	return "$ok"
}
bench -c 10 -P 4 -r 1000 HSET b:__rand_int__ f:__rand_int__ v
bench -c 10 -P 4 -r 1000 HGET b:__rand_int__ f:__rand_int__
bench -c 5 -r 1000 HINCRBY b:__rand_int__ counter 1
bench -c 5 -r 10000 HSET n:__rand_int__ f v
bench -c 5 -r 10000 DEL n:__rand_int__
bench -c 5 -k 0 PING
subscribers() {
	while :; do
		timeout 1 redis-cli -p "$RESP_PORT" PSUBSCRIBE '*' >/dev/null || [ $? = 124 ] || return
	done
}
load subscribers subscribers
http() {
	local bucket="http://127.0.0.1:$HTTP_PORT/v1/buckets/http"
	local key="$bucket/keys/k"
	while :; do
		curl -fsS -X PUT "$bucket" >/dev/null || return
		curl -fsS -X PUT --data-binary v "$key" >/dev/null || return
		curl -fsS "$key" >/dev/null || return
		curl -fsS -m 1 "http://127.0.0.1:$HTTP_PORT/v1/events" >/dev/null || [ $? = 28 ] || return
	done
}
load http http
saves() {
	while :; do
		sleep 60
		redis-cli -p "$RESP_PORT" BGSAVE >/dev/null || return
	done
}
load BGSAVE saves

began=$SECONDS
while [ $((SECONDS - began)) -lt "$DURATION" ]; do
	sleep "$INTERVAL"
	if ! kill -0 "$kvpid" 2>/dev/null; then
		echo "kv died" >&2
		tail -20 "$work/kv.log" >&2
		exit 1
	fi
	sample $((SECONDS - began))
	alive
done

stop_loads
for _ in $(seq 1 300); do
	[ "$(info clients connected_clients)" = 1 ] && break # the sample's own
	sleep 0.1
done
saves=0
if [ -d "$work/data/checkpoints" ]; then
	saves=$(find "$work/data/checkpoints" -mindepth 1 -maxdepth 1 | wc -l)
fi
cli FLUSHALL >/dev/null
sample "flushed"
end_g=$g end_f=$f
errors=$(grep -c 'level=ERROR' "$work/kv.log" || true)
warnings=$(grep -c 'level=WARN' "$work/kv.log" || true)
echo
echo "goroutines: $base_g at the start, $end_g at the end; open files: $base_f, then $end_f;" \
	"checkpoints kept: $saves; errors in the log: $errors, warnings: $warnings"
if [ -n "$UNLOAD_IDLE" ]; then
	metrics=$(curl -fs -m "$ANSWER" "http://127.0.0.1:$HTTP_PORT/metrics")
	echo "buckets taken out of memory (--unload-idle $UNLOAD_IDLE): $(metric 'kv_bucket_ends_total{reason="idle"}');" \
		"events dropped: $(metric kv_events_dropped_total)"
fi
# The warnings, by message (a subscriber too slow for the churn's events
# is one, by design).
{ grep 'level=WARN' "$work/kv.log" || true; } | sed -E 's/.*msg="([^"]*)".*/\1/' | sort | uniq -c | sort -rn | head -10
status=0
if [ "$end_g" -gt $((base_g + SLACK)) ] || [ "$end_f" -gt $((base_f + SLACK)) ]; then
	echo "LEAK: more than $SLACK goroutines or open files above the start's" >&2
	status=1
fi
if [ "$errors" -gt 0 ]; then
	grep 'level=ERROR' "$work/kv.log" | head -20 >&2
	status=1
fi
exit "$status"
