#!/usr/bin/env bash
# Echo over loopback (issue 12, "Speed"): C epoll (sleeping), C epoll busy-poll, .NET sockets on the thread pool, and
# PerCpu (1 CPU; 1 CPU in poll mode; 2 CPUs), each driven in turn, in one run, by the same C load client pinned to
# CPU 0. Rows: 1 connection ping-pong, 32 B (round trips/s, µs per round trip), and 64 connections x 16 in flight,
# 32 B (round trips/s). Every row is gated on a cache-line placement probe (see README.md) and repeated; the table
# shows the median of the kept runs and their spread (flagged FEW-KEPT below 3 kept runs; PLACEMENT-OFF with none
# kept, then over every run tried), the ratios and the issue's targets.
#
#   bench/echo/run.sh [--reps N] [--seconds S] [--quick] [--only KEY[,KEY...]]
#
# Environment: ECHO_PORT (default 7140), ECHO_PROBE_NS (reference probe; default: lower quartile of 15 probes at start).
# Writes bench/echo/build/ (binaries, server logs) and bench/results/echo-<time>.{tsv,txt} (git-ignored).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bench="$(cd "$here/.." && pwd)"
b="$here/build"; logs="$b/logs"; rm -rf "$logs"; mkdir -p "$b" "$logs" "$bench/results"
port="${ECHO_PORT:-7140}"
reps=3; secs=3; warm=3; quick=0; only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) reps="$2"; shift 2 ;;
    --seconds) secs="$2"; shift 2 ;;
    --quick) quick=1; reps=1; secs=0.5; warm=0.3; shift ;;
    --only) only="$2"; shift 2 ;;
    *) echo "usage: $0 [--reps N] [--seconds S] [--quick] [--only KEY[,KEY...]]" >&2; exit 2 ;;
  esac
done
stamp="$(date -u +%Y-%m-%dT%H%M%SZ)"
raw="$bench/results/echo-$stamp.tsv"; table="$bench/results/echo-$stamp.txt"

# ------------------------------------------------------------------ build
echo "building (gcc, dotnet build -c Release) ..."
gcc -O2 -o "$b/echo_server" "$here/c/echo_server.c"
gcc -O2 -o "$b/echo_client" "$here/c/echo_client.c"
# The busy-poll server: the same source with a zero epoll_wait timeout, derived as the anchors' run.sh does.
sed 's/epoll_wait(ep, evs, 256, -1)/epoll_wait(ep, evs, 256, 0)/' "$here/c/echo_server.c" > "$b/echo_server_poll.c"
grep -q 'epoll_wait(ep, evs, 256, 0)' "$b/echo_server_poll.c" || { echo "busy-poll variant: sed found no epoll_wait to change" >&2; exit 1; }
gcc -O2 -o "$b/echo_server_poll" "$b/echo_server_poll.c"
# The placement probe: the suite's native reference (one cache line bounced between CPU 0 and CPU 1).
gcc -O2 -pthread -o "$b/percpu_native" "$bench/native/percpu_native.c"
dotnet build "$here/NetEcho/NetEcho.csproj" -c Release -o "$b/net" -nologo -v:q >/dev/null
dotnet build "$here/PerCpuEcho/PerCpuEcho.csproj" -c Release -o "$b/percpu" -nologo -v:q >/dev/null

# ------------------------------------------------------------------ servers: key | label | command
servers=(
  "c.sleep|C epoll, sleeping (1 thread, CPU 1)|$b/echo_server $port 1"
  "c.poll|C epoll, busy-poll (1 thread, CPU 1)|$b/echo_server_poll $port 1"
  "net|.NET sockets on the thread pool (unpinned)|dotnet $b/net/NetEcho.dll $port 32"
  "percpu1|PerCpu, 1 CPU (core 1), default idle|taskset -c 1 dotnet $b/percpu/PerCpuEcho.dll $port 1 pin default 32"
  "percpu1.poll|PerCpu, 1 CPU (core 1), PollMode|taskset -c 1 dotnet $b/percpu/PerCpuEcho.dll $port 1 pin poll 32"
  "percpu2|PerCpu, 2 CPUs (cores 0, 1), default idle|dotnet $b/percpu/PerCpuEcho.dll $port 2 pin default 32"
)
rows=("pp|1 1 32" "tp|64 16 32")

# ------------------------------------------------------------------ placement probe
probe() { "$b/percpu_native" probe 1 | tail -1; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
if [ -n "${ECHO_PROBE_NS:-}" ]; then ref="$ECHO_PROBE_NS"
# The lower quartile of 15 probes, not their median: load from other processes only ever inflates a probe, and on a
# busy machine the median itself was inflated 10x (a gate on it then kept the disturbed runs and rejected the quiet ones).
else ref="$("$b/percpu_native" probe 15 50 | awk '$1 < 1e9' | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else print v[int((NR + 3) / 4)] }')"; fi
[ "$ref" = "nan" ] && { echo "no probe completed: the machine is too loaded to measure" >&2; exit 1; }
# A probe is "on" within 30% of the reference (the anchors' and the suite's rule); >= 1e9 means it completed nothing.
on() { awk -v p="$1" -v r="$ref" 'BEGIN { exit !(p < 1e9 && p <= r * 1.3 && p >= r * 0.7) }'; }
wait_placement() { # up to 2 s for the placement to come back; prints the last probe
  local p t0=$SECONDS; p="$(probe)"
  while ! on "$p" && [ $((SECONDS - t0)) -lt 2 ]; do sleep 0.1; p="$(probe)"; done
  echo "$p"
}

# ------------------------------------------------------------------ machine accounting
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8; exit }' /proc/stat; }
proc_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
hz="$(getconf CLK_TCK)"; ncpu="$(nproc)"

echo "reference probe: $ref ns per cache-line round trip (CPU 0 <-> CPU 1); load average: $(cut -d' ' -f1-3 /proc/loadavg)"
printf 'rep\tserver\trow\trts\tus_per_rt\tprobe_before\tprobe_after\tkept\tothers_pct\tclient_cpu_s\tclient_vcsw\tserver_cpu_s\tload1\talloc_B_per_req\tserver_cpu_us_per_req\tper_cpu_req_s\tattempt\tproc_cpu_us_per_req\tjitted\n' > "$raw"

server_pid=""
stop_server() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; server_pid=""; fi
}
trap stop_server EXIT

start_server() { # key command...
  local key=$1 log=$2; shift 2
  # exec: the pid we hold is the server itself (taskset execs too), so kill and /proc/<pid>/stat reach it.
  bash -c 'exec "$@"' _ "$@" > "$log" 2>&1 &
  server_pid=$!
  local t0=$SECONDS
  while ! "$b/echo_client" "$port" 1 1 32 0.05 0 >/dev/null 2>&1; do
    sleep 0.2
    if ! kill -0 "$server_pid" 2>/dev/null; then echo "server $key died: $(tail -3 "$log")" >&2; exit 1; fi
    if [ $((SECONDS - t0)) -gt 20 ]; then echo "server $key did not answer in 20 s" >&2; exit 1; fi
  done
}

run_row() { # rep key row args
  local rep=$1 key=$2 row=$3 args=$4 attempt kept pb pa pcpu jitted t0 t1 out rts us c0 c1 s0 s1 others ccpu cvsw scpu load sess alloc cpureq split nsess
  for attempt in 1 2 3 4; do
    pb="$(wait_placement)"
    nsess="$(grep -c ' session ' "$logs/$key-$rep.log" || true)"
    c0="$(busy_ticks)"; s0="$(proc_ticks "$server_pid")"; t0="$(date +%s.%N)"
    out="$("$b/echo_client" $port $args "$secs" 0)"
    c1="$(busy_ticks)"; s1="$(proc_ticks "$server_pid")"; t1="$(date +%s.%N)"
    load="$(cut -d' ' -f1 /proc/loadavg)"
    sleep 0.35 # the server's monitor reports the session once the connections are gone
    pa="$(probe)"
    rts="$(echo "$out" | awk 'NR == 1 { print $4 }')"; us="$(echo "$out" | awk 'NR == 1 { print $7 }')"
    ccpu="$(echo "$out" | awk 'NR == 2 { sub("cpu_s=", "", $2); print $2 }')"
    cvsw="$(echo "$out" | awk 'NR == 2 { sub("vcsw=", "", $3); print $3 }')"
    scpu="$(awk -v a="$s0" -v b="$s1" -v hz="$hz" 'BEGIN { printf "%.3f", (b - a) / hz }')"
    others="$(awk -v a="$c0" -v b="$c1" -v s="$scpu" -v c="$ccpu" -v hz="$hz" -v n="$ncpu" -v t="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" \
      'BEGIN { o = (b - a) / hz - s - c; if (o < 0) o = 0; printf "%.1f", o / (t * n) * 100 }')"
    sess="$(grep ' session ' "$logs/$key-$rep.log" | tail -n +$((nsess + 1)) | tail -1 || true)"
    alloc="$(echo "$sess" | tr ' ' '\n' | awk -F= '$1 == "alloc_B_per_req" { print $2 }')"; alloc="${alloc:--}"
    cpureq="$(echo "$sess" | tr ' ' '\n' | awk -F= '$1 == "cpu_us_per_req" { print $2 }')"; cpureq="${cpureq:--}"
    split="$(echo "$sess" | tr ' ' '\n' | awk -F= '$1 == "per_cpu_req_per_s" { print $2 }')"; split="${split:--}"
    jitted="$(echo "$sess" | tr ' ' '\n' | awk -F= '$1 == "jitted" { print $2 }')"; jitted="${jitted:--}"
    if on "$pb" && on "$pa"; then kept=1; else kept=0; fi
    # Server CPU per request from /proc/<pid>/stat (10 ms ticks over the whole row): comparable across all servers.
    pcpu="$(awk -v c="$scpu" -v r="$rts" -v t="$secs" 'BEGIN { printf "%.2f", (r > 0 ? c * 1e6 / (r * t) : 0) }')"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" "$key" "$row" "$rts" "$us" "$pb" "$pa" "$kept" \
      "$others" "$ccpu" "$cvsw" "$scpu" "$load" "$alloc" "$cpureq" "$split" "$attempt" "$pcpu" "$jitted" >> "$raw"
    printf '  %-13s %-3s rep %s try %s: %9s rt/s %8s us  probe %s/%s %s  others %s%%  server %s us/req  alloc %s B/req  jitted %s  per-CPU %s\n' \
      "$key" "$row" "$rep" "$attempt" "$rts" "$us" "$pb" "$pa" "$([ $kept = 1 ] && echo kept || echo OFF)" "$others" "$pcpu" "$alloc" "$jitted" "$split"
    [ "$kept" = 1 ] && return 0
    [ "$quick" = 1 ] && return 0
  done
  return 0
}

for rep in $(seq 1 "$reps"); do
  echo "repetition $rep of $reps (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  for entry in "${servers[@]}"; do
    IFS='|' read -r key label cmd <<< "$entry"
    if [ -n "$only" ] && ! echo ",$only," | grep -q ",$key,"; then continue; fi
    # shellcheck disable=SC2086 # the command is split on purpose
    start_server "$key" "$logs/$key-$rep.log" $cmd
    # Warm-up (JIT tiering, connection pools): one short run of each shape, not recorded.
    "$b/echo_client" "$port" 1 1 32 "$warm" 0 >/dev/null; sleep 0.2
    "$b/echo_client" "$port" 64 16 32 "$warm" 0 >/dev/null; sleep 0.35
    for r in "${rows[@]}"; do
      IFS='|' read -r row args <<< "$r"
      run_row "$rep" "$key" "$row" "$args"
    done
    stop_server
  done
done
load_end="$(cut -d' ' -f1-3 /proc/loadavg)"

# ------------------------------------------------------------------ summary
{
  echo "echo over loopback, $stamp, $reps repetitions x $secs s per row; client: bench/echo/c/echo_client.c pinned to CPU 0"
  echo "reference probe $ref ns; load average at the end: $load_end; machine: $(nproc) CPUs, $(uname -r)"
  echo
  awk -F'\t' -v ref="$ref" -v secs="$secs" '
    function sortv(a, n,   i, j, t) { for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t } }
    function med(a, n) { sortv(a, n); return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
    function ratio(s, peer, row) { return ((peer SUBSEP row) in value && value[peer, row] > 0) ? sprintf("%.2f", value[s, row] / value[peer, row]) : "-" }
    function verdict(r, target, dir) { if (r == "-") return "-"; return (dir < 0 ? r + 0 <= target : r + 0 >= target) ? "met" : "MISSED" }
    NR == 1 { next }
    {
      k = $2 SUBSEP $3; tried[k]++; if (!(k in seen)) { seen[k] = 1; order[++norder] = k }
      v = ($3 == "pp") ? $5 : $4
      all[k, tried[k]] = v
      if ($8 == 1) { kept[k]++; kv[k, kept[k]] = v; if ($14 != "-") { na[k]++; av[k, na[k]] = $14 }; ot[k] = ot[k] " " $9; sc[k, kept[k]] = $18; cc[k, kept[k]] = $10 / secs }
      allsc[k, tried[k]] = $18; allcc[k, tried[k]] = $10 / secs
    }
    END {
      for (i = 1; i <= norder; i++) {
        k = order[i]; n = kept[k] + 0; delete x
        delete z; delete w
        # 3+ kept: their median. 1-2 kept: still their median, flagged (a disturbed run says nothing about the server).
        # None kept: the median of every run tried, flagged PLACEMENT-OFF.
        if (n >= 1) { for (j = 1; j <= n; j++) { x[j] = kv[k, j]; z[j] = sc[k, j]; w[j] = cc[k, j] }; flag = n >= 3 ? "" : " FEW-KEPT" }
        else { n = tried[k]; for (j = 1; j <= n; j++) { x[j] = all[k, j]; z[j] = allsc[k, j]; w[j] = allcc[k, j] }; flag = " PLACEMENT-OFF" }
        srv = med(z, n); cli = med(w, n)
        m = med(x, n); lo = x[1]; hi = x[n]
        split(k, p, SUBSEP); value[p[1], p[2]] = m
        delete y; for (j = 1; j <= na[k]; j++) y[j] = av[k, j]
        a = na[k] ? med(y, na[k]) : "-"
        line[i] = sprintf("%-13s %-3s %10.1f  [%s .. %s]  kept %d/%d  server %.2f us/req  client %.0f%% busy  B/req %s  others%%:%s%s", p[1], p[2], m, lo, hi, kept[k] + 0, tried[k], srv, cli * 100, a, ot[k], flag)
      }
      print "server        row     median  [min .. max]  (pp: us per round trip; tp: round trips/s)"
      for (i = 1; i <= norder; i++) print line[i]
      print ""
      print "ratios (pp: time / theirs, lower is better; tp: ours / theirs, higher is better) and the issue 12 targets"
      n = split("percpu1 percpu1.poll percpu2", us, " ")
      for (i = 1; i <= n; i++) {
        s = us[i]
        if ((s SUBSEP "pp") in value) {
          r1 = ratio(s, "c.sleep", "pp"); r2 = ratio(s, "c.poll", "pp"); r3 = ratio(s, "net", "pp")
          printf "%-13s pp  %sx C sleeping (target <= 1.2: %s)  %sx C busy-poll  %sx .NET (target <= 0.7: %s)\n", s, r1, verdict(r1, 1.2, -1), r2, r3, verdict(r3, 0.7, -1)
        }
        if ((s SUBSEP "tp") in value) {
          r1 = ratio(s, "c.sleep", "tp"); r2 = ratio(s, "c.poll", "tp"); r3 = ratio(s, "net", "tp")
          printf "%-13s tp  %sx C sleeping (target >= 0.8: %s)  %sx C busy-poll  %sx .NET (target >= 1.5: %s)\n", s, r1, verdict(r1, 0.8, 1), r2, r3, verdict(r3, 1.5, 1)
        }
      }
    }' "$raw"
  echo
  echo "PerCpu stall-watchdog warnings in the server logs (each allocates its message; a stall here means the CPU thread was descheduled):"
  for f in "$logs"/percpu*.log; do [ -f "$f" ] && printf '  %s: %s\n' "$(basename "$f" .log)" "$(grep -c 'warning on CPU' "$f" || true)"; done
} | tee "$table"
echo "raw: $raw"
echo "table: $table"
