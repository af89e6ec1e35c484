#!/usr/bin/env bash
# Measures what NativeAOT changes for the percpu tool and samples/QuickStart: start time (median wall time of
# `percpu --version` over N runs), and peak RSS (/usr/bin/time -v) of a short real run, JIT vs AOT.
#   eng/measure-aot.sh [runs]      (default 21; prints a Markdown table)
# The JIT builds are framework-dependent publishes started through their apphost, as the installed tool is.
set -euo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
runs=${1:-21}
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
rid=linux-$(uname -m | sed -e 's/x86_64/x64/' -e 's/aarch64/arm64/')
linker=(); command -v clang >/dev/null 2>&1 || linker=(-p:CppCompilerAndLinker=gcc)
for p in src/PerCpu.Cli samples/QuickStart; do
    n=$(basename "$p")
    dotnet publish "$p" -c Release -o "$out/jit-$n" -nologo -tl:off -v:q >/dev/null
    dotnet publish "$p" -c Release -r "$rid" -p:PublishAot=true "${linker[@]}" -o "$out/aot-$n" -nologo -tl:off -v:q >/dev/null
done

median_ms() { # command... : median wall time in ms over $runs runs (after one warm-up run)
    "$@" >/dev/null 2>&1
    for _ in $(seq "$runs"); do
        s=$(date +%s%N); "$@" >/dev/null 2>&1; e=$(date +%s%N); echo $(((e - s) / 1000000))
    done | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}
peak_mb() { # command... : peak RSS in MB, median of 5 runs
    for _ in 1 2 3 4 5; do
        /usr/bin/time -f '%M' -o "$out/rss" "$@" >/dev/null 2>&1; cat "$out/rss"
    done | sort -n | awk '{a[NR]=$1} END {printf "%.0f", a[3]/1024}'
}

echo "| | JIT | NativeAOT |"
echo "| --- | ---: | ---: |"
echo "| \`percpu --version\`: start to exit, median of $runs | $(median_ms "$out/jit-PerCpu.Cli/PerCpu.Cli" --version) ms | $(median_ms "$out/aot-PerCpu.Cli/PerCpu.Cli" --version) ms |"
echo "| \`percpu --version\`: peak RSS | $(peak_mb "$out/jit-PerCpu.Cli/PerCpu.Cli" --version) MB | $(peak_mb "$out/aot-PerCpu.Cli/PerCpu.Cli" --version) MB |"
echo "| \`percpu demo --seconds 1 --json\`: peak RSS | $(peak_mb "$out/jit-PerCpu.Cli/PerCpu.Cli" demo --seconds 1 --json) MB | $(peak_mb "$out/aot-PerCpu.Cli/PerCpu.Cli" demo --seconds 1 --json) MB |"
echo "| QuickStart (1 M cross-CPU messages): start to exit, median of 5 | $(runs=5 median_ms "$out/jit-QuickStart/QuickStart") ms | $(runs=5 median_ms "$out/aot-QuickStart/QuickStart") ms |"
echo "| QuickStart: peak RSS | $(peak_mb "$out/jit-QuickStart/QuickStart") MB | $(peak_mb "$out/aot-QuickStart/QuickStart") MB |"
echo "| on disk | $(du -sm "$out/jit-PerCpu.Cli" | cut -f1) MB tool folder (+ the shared runtime) | $(du -sm "$out/aot-PerCpu.Cli/PerCpu.Cli" | cut -f1) MB, one file (symbols apart) |"
echo
echo "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end; $(date -u +%Y-%m-%d)."
