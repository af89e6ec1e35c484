#!/usr/bin/env bash
# Regenerates PublicAPI.Unshipped.txt of every project that tracks its public API (TrackPublicApi), from the
# analyzer's own findings in a build:
#   RS0016 "Symbol 'X' is not part of the declared public API"  -> X goes into Unshipped
#   RS0017 "Symbol 'X' is part of the declared API, but ... could not be found", reported on the Shipped file
#                                                               -> *REMOVED*X goes into Unshipped
# Unshipped is rebuilt from scratch each time, so the result is the same whatever state it was in (entries of a
# member that was added and then removed again disappear; a merge conflict in it is resolved by running this).
#
#   eng/update-public-api.sh            regenerate Unshipped of every tracking project under src/
#   eng/update-public-api.sh --ship     then move Unshipped into Shipped (at a release)
#   eng/update-public-api.sh PROJ.csproj ...   only these projects
#
# Review the diff it leaves: every line is a public API change that ships.
set -euo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1 LC_ALL=C

ship=false
projects=()
for arg in "$@"; do
    case "$arg" in
        --ship) ship=true ;;
        -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *.csproj) projects+=("$(realpath "$arg")") ;;
        *) echo "update-public-api: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
    esac
done
if [ ${#projects[@]} -eq 0 ]; then
    while IFS= read -r p; do projects+=("$(realpath "$p")"); done \
        < <(grep -l '<TrackPublicApi>true</TrackPublicApi>' src/*/*.csproj | sort)
fi
[ ${#projects[@]} -gt 0 ] || { echo "update-public-api: no project sets TrackPublicApi" >&2; exit 1; }

header='#nullable enable'
work=$(mktemp -d)
restore_backups() {
    for p in "${projects[@]}"; do
        d=$(dirname "$p"); b="$work/$(basename "$d")"
        [ -f "$b.unshipped" ] && cp "$b.unshipped" "$d/PublicAPI.Unshipped.txt"
        [ -f "$b.shipped" ] && cp "$b.shipped" "$d/PublicAPI.Shipped.txt"
    done
}
ok=false
trap '$ok || { echo "update-public-api: failed; PublicAPI files left as they were" >&2; restore_backups; }; rm -rf "$work"' EXIT

# Empty every Unshipped first (backing it up), so that no project's build sees another's stale entries.
for p in "${projects[@]}"; do
    d=$(dirname "$p"); b="$work/$(basename "$d")"
    [ -f "$d/PublicAPI.Shipped.txt" ] || printf '%s\n' "$header" > "$d/PublicAPI.Shipped.txt"
    [ -f "$d/PublicAPI.Unshipped.txt" ] || printf '%s\n' "$header" > "$d/PublicAPI.Unshipped.txt"
    cp "$d/PublicAPI.Unshipped.txt" "$b.unshipped"
    cp "$d/PublicAPI.Shipped.txt" "$b.shipped"
    printf '%s\n' "$header" > "$d/PublicAPI.Unshipped.txt"
done

for p in "${projects[@]}"; do
    d=$(dirname "$p"); name=$(basename "$p"); log="$work/$name.log"
    echo "update-public-api: building $name" >&2
    # --no-incremental: an up-to-date project would not compile, and so would not report. Warnings stay warnings
    # for this build only; the file logger neither wraps nor repeats lines.
    if ! dotnet build "$p" -c Release --no-incremental -nologo -tl:off -v:q \
            -p:TreatWarningsAsErrors=false -p:WarningsAsErrors= \
            "-flp:LogFile=$log;Verbosity=minimal;NoSummary" >/dev/null; then
        grep -E ': error ' "$log" | sort -u >&2 || true
        exit 1
    fi
    # Keep only this project's findings (a referenced project's appear in the log too, tagged with its own path).
    mine=$(grep -F "[$p]" "$log" || true)
    added=$(printf '%s\n' "$mine" | grep -E ': warning RS0016: ' \
        | sed -E "s/^.*: warning RS0016: Symbol '(.*)' is not part of the declared (public )?API.*$/\1/" || true)
    removed=$(printf '%s\n' "$mine" | grep -E 'PublicAPI\.Shipped\.txt\([0-9]+,[0-9]+\): warning RS0017: ' \
        | sed -E "s/^.*: warning RS0017: Symbol '(.*)' is part of the declared API, but .*$/*REMOVED*\1/" || true)
    {
        printf '%s\n' "$header"
        printf '%s\n%s\n' "$added" "$removed" | grep -v '^$' | sort -u || true
    } > "$d/PublicAPI.Unshipped.txt"
    n_add=$(printf '%s\n' "$added" | grep -c . || true); n_rem=$(printf '%s\n' "$removed" | grep -c . || true)
    echo "update-public-api: $name: $n_add unshipped, $n_rem removed" >&2
    # Anything else the analyzer says (RS0036 nullability, RS0050 removed-but-present, RS0026 overloads...) needs a person.
    others=$(printf '%s\n' "$mine" | grep -E ': (warning|error) RS00[0-9][0-9]: ' | grep -vE ' RS001[67]: ' | sort -u || true)
    [ -z "$others" ] || { echo "update-public-api: $name: the analyzer also reports:" >&2; printf '%s\n' "$others" >&2; }
done

if $ship; then
    for p in "${projects[@]}"; do
        d=$(dirname "$p"); s="$d/PublicAPI.Shipped.txt"; u="$d/PublicAPI.Unshipped.txt"
        # Shipped = (Shipped - removed) + added.
        grep -E '^\*REMOVED\*' "$u" | sed 's/^\*REMOVED\*//' > "$work/gone" || true
        {
            printf '%s\n' "$header"
            { grep -vxF -f "$work/gone" "$s" || true; grep -vE '^\*REMOVED\*' "$u" || true; } \
                | grep -vxF "$header" | grep -v '^$' | sort -u || true
        } > "$work/shipped.new"
        mv "$work/shipped.new" "$s"
        printf '%s\n' "$header" > "$u"
        echo "update-public-api: $(basename "$p"): Unshipped moved into Shipped" >&2
    done
fi
ok=true
