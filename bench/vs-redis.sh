#!/usr/bin/env bash
# vs-redis.sh: kv against Redis with redis-benchmark, side by side on loopback.
#
# Installs redis-server and redis-tools if missing (apt-get), builds kv,
# starts Redis and kv on their own ports, runs
#   redis-benchmark -c 50 -n 200000 -r 100000 HSET h f:__rand_int__ v
#   redis-benchmark -c 50 -n 200000 -r 100000 HGET h f:__rand_int__
# against each, once without pipelining and once with -P 16, prints the
# requests per second and the ratio kv/Redis, and stops what it started.
# Beside each rate it prints the CPU time (user and system, every thread:
# /proc/PID/stat) each server's process spent per request over the same
# runs, and its ratio: a figure the noise of a shared machine moves far
# less than the rates (resolution: one clock tick over the run, 0.05 us a
# request at 200,000 requests). With RENAMER=1 it includes the renames.
#
# MODE=memory (the default): Redis without persistence against kv
# --in-memory, HSET and HGET. MODE=durable: HSET only, in two pairs, each
# on fresh data directories: Redis appendonly yes, appendfsync everysec
# against kv --fsync everysec, then Redis appendfsync always against kv
# --fsync always. MODE=all: both.
#
# RENAMER=1: while each figure is measured, one more client renames a hash
# over and over (HSET rsrc f v, then RENAME rsrc rdst: redis-cli, one
# command at a time), and the renames it made per second are printed
# beside each server's figure (the median of the rounds), so that what a
# RENAME costs the other clients shows against what it costs Redis's.
#
# Usage: bench/vs-redis.sh            (from anywhere in the repository)
# Environment: MODE (memory), REDIS_PORT (default 16379), KV_PORT (default 16380),
#   CLIENTS (50), REQUESTS (200000), KEYSPACE (100000), PIPELINE (16),
#   ROUNDS (3): each figure is the median of ROUNDS runs, Redis and kv
#   taking turns, so that a noisy neighbour hurts both alike;
#   PIN (0): with PIN=1, redis-benchmark runs on the first CPU this shell
#   may use (taskset) and both servers on the others, so that the load
#   generator and the server under test do not share a CPU, as when
#   clients run on other machines (on a VM, two vCPUs may still be two
#   threads of one physical core). Unpinned, on a 2-core machine, redis-benchmark needs a whole
#   core and shares both with the server: single-threaded Redis leaves it
#   one, Go's scheduler (GOMAXPROCS=2) does not. Pinned on one core, kv
#   gets GOMAXPROCS=1 from Go, raised to 2 by kv itself when durable;
#   KV_GOMAXPROCS (unset: Go's choice): the GOMAXPROCS of kv. Report
#   which settings you used.
set -euo pipefail

REDIS_PORT=${REDIS_PORT:-16379}
KV_PORT=${KV_PORT:-16380}
CLIENTS=${CLIENTS:-50}
REQUESTS=${REQUESTS:-200000}
KEYSPACE=${KEYSPACE:-100000}
PIPELINE=${PIPELINE:-16}
ROUNDS=${ROUNDS:-3}
MODE=${MODE:-memory}
PIN=${PIN:-0}
RENAMER=${RENAMER:-0}
case "$MODE" in memory | durable | all) ;; *)
	echo "MODE must be memory, durable or all, not $MODE" >&2
	exit 2
	;;
esac

root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
pids=()

cleanup() {
	for pid in ${pids[@]+"${pids[@]}"}; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in ${pids[@]+"${pids[@]}"}; do
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
	echo "installing redis-server and redis-tools..." >&2
	sudo=""
	[ "$(id -u)" -ne 0 ] && sudo=sudo
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server redis-tools >/dev/null
fi

wait_port() { # port name
	for _ in $(seq 1 100); do
		if redis-cli -p "$1" PING >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.1
	done
	echo "$2 did not come up on port $1" >&2
	exit 1
}

echo "building kv..." >&2
(cd "$root" && go build -o "$work/kv" ./cmd/kv)

# With PIN=1, redis-benchmark runs on CPU 0 and both servers on the others
# (taskset), so that the client and the server under test never share a
# core; otherwise the kernel places all three where it likes.
client=() server=()
if [ "$PIN" = 1 ]; then
	# The CPUs this shell may use (a cpuset may not start at 0), one a line.
	cpus=$(awk '/^Cpus_allowed_list:/ { print $2 }' /proc/self/status | tr ',' '\n' |
		awk -F- '{ for (c = $1; c <= ($2 == "" ? $1 : $2); c++) print c }')
	if ! command -v taskset >/dev/null || [ "$(echo "$cpus" | wc -l)" -lt 2 ]; then
		echo "PIN=1 needs taskset and at least 2 CPUs" >&2
		exit 2
	fi
	client=(taskset -c "$(echo "$cpus" | head -1)")
	server=(taskset -c "$(echo "$cpus" | tail -n +2 | paste -sd,)")
fi

# cputicks pid: the CPU time (user and system, every thread) the process
# has used, in clock ticks. The second field, the command's name, is cut
# first, as it may hold spaces.
cputicks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
tck=$(getconf CLK_TCK)

# rps port pid pipeline command...: prints the requests per second of one
# redis-benchmark run against the server on port, and the CPU time its
# process (pid) spent on each request, in microseconds.
rps() {
	local port=$1 pid=$2 pipe=$3 renamer="" began before rate
	shift 3
	before=$(cputicks "$pid")
	if [ "$RENAMER" = 1 ]; then
		yes $'HSET rsrc f v\nRENAME rsrc rdst' | ${client[@]+"${client[@]}"} redis-cli -p "$port" >"$work/renamer.out" 2>&1 &
		renamer=$!
		began=$(date +%s.%N)
	fi
	rate=$(${client[@]+"${client[@]}"} redis-benchmark -p "$port" -c "$CLIENTS" -n "$REQUESTS" -r "$KEYSPACE" -P "$pipe" -q "$@" 2>/dev/null |
		tr '\r' '\n' | grep -Eo '[0-9.]+ requests per second' | tail -1 | cut -d' ' -f1)
	awk -v rate="$rate" -v ticks="$(($(cputicks "$pid") - before))" -v tck="$tck" -v n="$REQUESTS" \
		'BEGIN { printf "%s %.2f\n", rate, ticks / tck * 1e6 / n }'
	if [ -n "$renamer" ]; then
		kill "$renamer" 2>/dev/null || true
		wait "$renamer" 2>/dev/null || true
		# Renames per second, kept beside the figure (see pair).
		awk -v began="$began" -v ended="$(date +%s.%N)" '$0 == "OK" { n++ } END { printf "%.0f\n", n / (ended - began) }' \
			"$work/renamer.out" >>"$work/renames.$port"
	fi
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# ratio a b: a/b as "1.23x", or n/a when b is not positive.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }'; }

# pair title: runs the commands in cmds against Redis started with the
# arguments in redis_extra and kv started with those in kv_extra, each on
# a fresh directory, and stops both.
pair() {
	local title=$1
	rm -rf "$work/redis-data" "$work/kv-data"
	mkdir -p "$work/redis-data"
	${server[@]+"${server[@]}"} redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --daemonize no --dir "$work/redis-data" \
		--logfile "$work/redis.log" "${redis_extra[@]}" &
	local rpid=$!
	pids+=("$rpid")
	if [ -n "${KV_GOMAXPROCS:-}" ]; then
		export GOMAXPROCS=$KV_GOMAXPROCS
	fi
	${server[@]+"${server[@]}"} "$work/kv" --resp-addr "127.0.0.1:$KV_PORT" --log-level warn "${kv_extra[@]}" 2>>"$work/kv.log" &
	local kpid=$!
	unset GOMAXPROCS
	pids+=("$kpid")
	wait_port "$REDIS_PORT" redis-server
	wait_port "$KV_PORT" kv

	echo "$title (kv $(redis-cli -p "$KV_PORT" INFO server | tr -d '\r' | grep '^go_maxprocs:'))"
	printf '%-28s %14s %14s %8s %13s %10s %8s' "benchmark" "Redis req/s" "kv req/s" "kv/Redis" "Redis CPU/req" "kv CPU/req" "kv/Redis"
	if [ "$RENAMER" = 1 ]; then
		printf ' %16s %13s' "Redis renames/s" "kv renames/s"
	fi
	echo
	for pipe in 1 "$PIPELINE"; do
		for cmd in "${cmds[@]}"; do
			rs=() ks=()
			rm -f "$work/renames.$REDIS_PORT" "$work/renames.$KV_PORT"
			for _ in $(seq 1 "$ROUNDS"); do
				# shellcheck disable=SC2086
				rs+=("$(rps "$REDIS_PORT" "$rpid" "$pipe" $cmd)")
				# shellcheck disable=SC2086
				ks+=("$(rps "$KV_PORT" "$kpid" "$pipe" $cmd)")
			done
			r=$(printf '%s\n' "${rs[@]}" | cut -d' ' -f1 | median)
			k=$(printf '%s\n' "${ks[@]}" | cut -d' ' -f1 | median)
			rc=$(printf '%s\n' "${rs[@]}" | cut -d' ' -f2 | median)
			kc=$(printf '%s\n' "${ks[@]}" | cut -d' ' -f2 | median)
			printf '%-28s %14s %14s %8s %11s us %7s us %8s' "${cmd%% *} -P $pipe" "$r" "$k" "$(ratio "$k" "$r")" \
				"$rc" "$kc" "$(ratio "$kc" "$rc")"
			if [ "$RENAMER" = 1 ]; then
				printf ' %16s %13s' "$(median <"$work/renames.$REDIS_PORT")" "$(median <"$work/renames.$KV_PORT")"
			fi
			echo
		done
	done
	kill "$rpid" "$kpid" 2>/dev/null || true
	wait "$rpid" "$kpid" 2>/dev/null || true
	echo
}

if [ "$MODE" = memory ] || [ "$MODE" = all ]; then
	redis_extra=(--save '' --appendonly no)
	kv_extra=(--in-memory)
	cmds=("HSET h f:__rand_int__ v" "HGET h f:__rand_int__")
	pair "in memory: Redis without persistence, kv --in-memory"
fi
if [ "$MODE" = durable ] || [ "$MODE" = all ]; then
	cmds=("HSET h f:__rand_int__ v")
	redis_extra=(--save '' --appendonly yes --appendfsync everysec)
	kv_extra=(--data-dir "$work/kv-data" --fsync everysec)
	pair "durable, everysec: Redis appendonly yes appendfsync everysec, kv --fsync everysec"
	redis_extra=(--save '' --appendonly yes --appendfsync always)
	kv_extra=(--data-dir "$work/kv-data" --fsync always)
	pair "durable, always: Redis appendonly yes appendfsync always, kv --fsync always"
fi
echo "(MODE=$MODE; median of $ROUNDS; redis-benchmark -c $CLIENTS -n $REQUESTS -r $KEYSPACE; $(redis-server --version | cut -d' ' -f3); kv $("$work/kv" --version | cut -d' ' -f2) with GOMAXPROCS=${KV_GOMAXPROCS:-default}; $(nproc) cores; PIN=$PIN; RENAMER=$RENAMER)"
