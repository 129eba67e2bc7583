#!/usr/bin/env bash
# scripts/bench.d/cpu_profile.sh — where a request's CPU goes in one proxy binary (issue 15).
#
#   scripts/bench.d/cpu_profile.sh BINARY OUTDIR [SECONDS] [CONNS]
#
# Starts BINARY (local mode, auth off, fresh temporary data dir, log level warn) on a free loopback port,
# stores one KV value, and drives GET of it with wrk at CONNS connections (default 16) for SECONDS
# (default 5) three times:
#   1. plain: CPU per request from the proxy's own /proc/PID/stat (user and system), and context
#      switches per request (summed over its threads' /proc/PID/task/*/status);
#   2. under `strace -c -f`: system calls per request, by name (strace slows the proxy a lot: only the
#      counts per request mean something there, not the rate);
#   3. under `perf record -e cpu-clock -g`: the share of samples per DSO (kernel against the binary and
#      its libraries) and the top symbols.
# Writes OUTDIR/summary.txt (and the raw strace/perf outputs beside it) and prints the summary.
# Needs wrk, curl, strace and perf (Debian: linux-perf). Only loopback; every run is bounded.
set -euo pipefail

BIN=${1:?usage: cpu_profile.sh BINARY OUTDIR [SECONDS] [CONNS]}
OUTDIR=${2:?usage: cpu_profile.sh BINARY OUTDIR [SECONDS] [CONNS]}
SECS=${3:-5}
CONNS=${4:-16}
D=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
for tool in wrk curl strace perf python3; do
  command -v "$tool" > /dev/null || { echo "cpu_profile: $tool is not installed" >&2; exit 1; }
done
mkdir -p "$OUTDIR"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/era-cpu.XXXXXX")
PID=
cleanup() {
  [[ -n $PID ]] && kill "$PID" 2> /dev/null && wait "$PID" 2> /dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT

ERA_PROXY_LOG_LEVEL=warn ERA_PROXY_AUTH=off ERA_PROXY_DATA_DIR="$TMP/data" ERA_PROXY_PORT=0 \
  ERA_PROXY_HOST=127.0.0.1 "$BIN" serve > "$TMP/out" 2> "$OUTDIR/proxy.err" &
PID=$!
URL=
for _ in $(seq 100); do
  URL=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$TMP/out" 2> /dev/null | head -1 || true)
  [[ -n $URL ]] && break
  sleep 0.1
done
[[ -n $URL ]] || { echo "cpu_profile: the proxy did not start" >&2; exit 1; }
VALUE=$(printf 'v%.0s' $(seq 64))
curl -sf -X PUT "$URL/api/storage/kv/cpu/k" -H 'Content-Type: application/json' \
  --data-binary "{\"value\": \"$VALUE\"}" > /dev/null

load() {  # load SECONDS -> requests answered (wrk through the bench's scenario script)
  local out
  out=$(BENCH_PATH=/api/storage/kv/cpu/k BENCH_CONNS=$((CONNS / 2)) \
    wrk -t2 -c"$CONNS" -d"${1}s" --timeout 5s -s "$D/scenario.lua" "$URL" 2>&1)
  read -r _ req _ _ _ _ e1 e2 e3 status e5 <<< "$(grep '^BENCH ' <<< "$out")"
  ((e1 + e2 + e3 + status + e5 == 0)) || { echo "cpu_profile: errors under load: $out" >&2; exit 1; }
  echo "$req"
}
cpu_ticks() { awk '{print $14, $15}' "/proc/$PID/stat"; }  # utime stime, in clock ticks
ctx() { cat /proc/"$PID"/task/*/status 2> /dev/null | awk '/ctxt_switches/ {n += $2} END {print n}'; }

load 1 > /dev/null  # warm up
read -r u0 s0 <<< "$(cpu_ticks)"
c0=$(ctx)
REQ=$(load "$SECS")
read -r u1 s1 <<< "$(cpu_ticks)"
c1=$(ctx)
HZ=$(getconf CLK_TCK)

strace -c -f -o "$OUTDIR/strace.txt" -p "$PID" 2> /dev/null &
SPID=$!
sleep 1  # strace attaches to every thread; no event tells when it has
SREQ=$(load "$SECS")
kill -INT "$SPID"
wait "$SPID" || true

perf record -e cpu-clock -F 999 -g -o "$OUTDIR/perf.data" -p "$PID" > /dev/null 2>&1 &
PPID_=$!
PREQ=$(load "$SECS")
kill -INT "$PPID_"
wait "$PPID_" || true
perf report -i "$OUTDIR/perf.data" --no-children --sort dso --stdio -g none 2> /dev/null | grep -v '^#' | grep -v '^$' \
  | head -12 > "$OUTDIR/perf_dso.txt" || true
perf report -i "$OUTDIR/perf.data" --no-children --sort dso,sym --stdio -g none 2> /dev/null | grep -v '^#' \
  | grep -v '^$' | head -30 > "$OUTDIR/perf_sym.txt" || true

python3 - "$REQ" "$SECS" "$u0" "$s0" "$u1" "$s1" "$HZ" "$c0" "$c1" "$SREQ" "$OUTDIR" "$CONNS" "$PREQ" \
  > "$OUTDIR/summary.txt" << 'EOF'
import sys
req, secs, u0, s0, u1, s1, hz, c0, c1, sreq, outdir, conns, preq = sys.argv[1:]
req, secs, hz, sreq = int(req), float(secs), int(hz), int(sreq)
user = (int(u1) - int(u0)) / hz * 1e6 / req
system = (int(s1) - int(s0)) / hz * 1e6 / req
print(f"KV get at {conns} connections, {secs:g} s: {req} requests, {req / secs:,.0f} req/s")
print(f"CPU per request: {user + system:.1f} us ({user:.1f} us user, {system:.1f} us system: "
      f"{system / (user + system) * 100:.0f} % in the kernel)")
print(f"context switches per request: {(int(c1) - int(c0)) / req:.2f}")
calls = {}
total = 0
with open(f"{outdir}/strace.txt") as f:
    for line in f:
        parts = line.split()
        if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
            n = int(parts[3])
            calls[parts[-1]] = n
            total += n
print(f"system calls per request (strace -c, {sreq} requests): {total / max(sreq, 1):.1f}: " +
      ", ".join(f"{k} {v / max(sreq, 1):.2f}" for k, v in sorted(calls.items(), key=lambda kv: -kv[1])[:8]))
print(f"perf record ({preq} requests): samples by DSO:")
print(open(f"{outdir}/perf_dso.txt").read().rstrip())
print("top symbols:")
print(open(f"{outdir}/perf_sym.txt").read().rstrip())
EOF
cat "$OUTDIR/summary.txt"
