#!/usr/bin/env bash
# Runs redis-benchmark against percpu-kv, redis-server and garnet-server in turn (same machine, same port, same
# client settings) and writes results/<stamp>/{results.json,results.md,chart.svg}. A server that is not installed is
# skipped with the reason printed.
#
#   bench/kv/run.sh                      # -n 200000 -c 50, tests set,get,incr,lpush,mset, -P 1 / -P 16 / -P 16 -r 1000000
#   N=50000 CPUS=2 bench/kv/run.sh
#   GARNET=/path/to/garnet-server bench/kv/run.sh
#   KV_ARGS="--transport socket" bench/kv/run.sh     # extra percpu-kv options
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
N="${N:-200000}"
CLIENTS="${CLIENTS:-50}"
CPUS="${CPUS:-$(nproc)}"
PORT="${PORT:-6399}"
TESTS="${TESTS:-set,get,incr,lpush,mset}"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
out="$here/results/$stamp"
mkdir -p "$out"

command -v redis-benchmark >/dev/null || { echo "redis-benchmark is not installed (apt-get install redis-tools): nothing to drive the servers with." >&2; exit 1; }

echo "building percpu-kv (Release)…"
dotnet build "$root/src/PerCpu.Kv" -c Release -v quiet -nologo >/dev/null
kv_dll="$root/src/PerCpu.Kv/bin/Release/net10.0/PerCpu.Kv.dll"
garnet="${GARNET:-$(command -v garnet-server || true)}"
[ -z "$garnet" ] && [ -x "$HOME/.dotnet/tools/garnet-server" ] && garnet="$HOME/.dotnet/tools/garnet-server"

pid=""
stop_server() { if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=""; fi; }
trap stop_server EXIT

wait_ready() {
  for _ in $(seq 1 300); do
    if redis-cli -p "$PORT" PING 2>/dev/null | grep -q PONG; then return 0; fi
    sleep 0.1
  done
  echo "server did not answer PING on port $PORT" >&2; return 1
}

run_server() { # name, command...
  local name="$1"; shift
  echo "== $name: $*"
  "$@" > "$out/$name.log" 2>&1 &
  pid=$!
  wait_ready
  for mode in "P1:-P 1" "P16:-P 16" "P16r:-P 16 -r 1000000"; do
    local tag="${mode%%:*}" flags="${mode#*:}"
    redis-cli -p "$PORT" FLUSHALL >/dev/null
    # shellcheck disable=SC2086
    redis-benchmark -p "$PORT" -t "$TESTS" -n "$N" -c "$CLIENTS" $flags --csv > "$out/$name.$tag.csv"
    echo "   $tag done"
  done
  stop_server
}

# shellcheck disable=SC2086
run_server percpu-kv dotnet "$kv_dll" --port "$PORT" --cpus "$CPUS" ${KV_ARGS:-}
if command -v redis-server >/dev/null; then
  run_server redis-server redis-server --port "$PORT" --save "" --appendonly no
else
  echo "== redis-server: skipped (not installed: apt-get install redis-server)"
fi
if [ -n "$garnet" ]; then
  run_server garnet-server "$garnet" --port "$PORT"
else
  echo "== garnet-server: skipped (not installed: dotnet tool install -g garnet-server, or GARNET=path)"
fi

python3 "$here/report.py" "$out" "N=$N clients=$CLIENTS cpus=$CPUS machine=$(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
echo "results in $out"
