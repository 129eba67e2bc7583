# shellcheck shell=bash
# Sourced by scripts/bench: the many-clients and slowloris scenarios of issue 15, against the proxy and
# the nginx baseline in the same run (one server at a time, so their sockets do not compete). Uses
# MODE, PROXY, PROXY_PID, NGINX, NGINX_PID, OUT, D and log/die from scripts/bench; writes
# $OUT/clients.tsv, which report.py turns into its own table.
CLIENTS_TSV="$OUT/clients.tsv"
printf 'scenario\tserver\tclients\tanswered\texpected\tp50_ms\tp99_ms\theld\trss_mib\tnote\n' > "$CLIENTS_TSV"
if [[ $MODE == quick ]]; then
  CLIENT_RUNS=("300 1 3")                  # clients, seconds between a client's requests, seconds measured
  LORIS=(100 1 3)                          # attackers, seconds between their bytes, seconds measured
else
  CLIENT_RUNS=("300 1 10" "1000 1 10" "10000 10 30")
  LORIS=(1000 3 20)
fi
clients_run() {  # clients_run SERVER URL PID PATH ARGS...
  local server=$1 url=$2 pid=$3 path=$4
  shift 4
  python3 "$D/many_clients.py" "$@" --url "$url" --path "$path" --pids "$pid" --server "$server" \
    --out "$CLIENTS_TSV" > /dev/null 2>> "$OUT/clients.err" || die "many_clients.py $* failed: $(tail -3 "$OUT/clients.err")"
}
for run in "${CLIENT_RUNS[@]}"; do
  read -r n every secs <<< "$run"
  for server in proxy nginx; do
    if [[ $server == proxy ]]; then
      clients_run proxy "$PROXY" "$PROXY_PID" /healthz clients --scenario many_clients --clients "$n" \
        --interval "$every" --duration "$secs"
    else
      clients_run nginx "$NGINX" "$NGINX_PID" /kv/1 clients --scenario many_clients --clients "$n" \
        --interval "$every" --duration "$secs"
    fi
  done
  log "many_clients $n: $(awk -F'\t' -v n="$n" '$1 == "many_clients" && $3 == n {printf "%s %s/%s p99 %s ms RSS %s MiB; ", $2, $4, $5, $7, $9}' "$CLIENTS_TSV")"
done
for server in proxy nginx; do
  if [[ $server == proxy ]]; then url=$PROXY pid=$PROXY_PID path=/healthz; else url=$NGINX pid=$NGINX_PID path=/kv/1; fi
  clients_run "$server" "$url" "$pid" "$path" slowloris --scenario slowloris --clients 16 --interval 0.05 \
    --attackers "${LORIS[0]}" --gap "${LORIS[1]}" --duration "${LORIS[2]}"
done
log "slowloris: $(awk -F'\t' '$1 == "slowloris" {printf "%s p99 %s ms; ", $2, $7}' "$CLIENTS_TSV")"
