#!/usr/bin/env python3
"""Turns redis-benchmark --csv files (<server>.<mode>.csv) into results.json, results.md and chart.svg."""
import csv, json, os, sys

out, note = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "")
servers = ["percpu-kv", "redis-server", "garnet-server"]
modes = ["P1", "P16", "P16r"]
mode_names = {"P1": "-P 1", "P16": "-P 16", "P16r": "-P 16 -r 1M"}
data = {}
for s in servers:
    for m in modes:
        path = os.path.join(out, f"{s}.{m}.csv")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            for row in csv.DictReader(f):
                test = row["test"].split(" ")[0]
                data.setdefault(s, {}).setdefault(m, {})[test] = {
                    "rps": float(row["rps"]),
                    "p50_ms": float(row["p50_latency_ms"]),
                    "p99_ms": float(row["p99_latency_ms"]),
                }
json.dump({"note": note, "results": data}, open(os.path.join(out, "results.json"), "w"), indent=2)

tests = []
for s in data.values():
    for m in s.values():
        for t in m:
            if t not in tests:
                tests.append(t)
lines = [f"Run: {note}", ""]
for m in modes:
    present = [s for s in servers if m in data.get(s, {})]
    if not present:
        continue
    lines.append(f"### {mode_names[m]}")
    lines.append("")
    head = "| test | " + " | ".join(f"{s} req/s (p50/p99 ms)" for s in present) + " | kv ÷ redis | kv ÷ garnet |"
    lines.append(head)
    lines.append("|" + "---|" * (len(present) + 3))
    for t in tests:
        cells, rps = [], {}
        for s in present:
            r = data[s][m].get(t)
            if r:
                rps[s] = r["rps"]
                cells.append(f"{r['rps']:,.0f} ({r['p50_ms']:.2f}/{r['p99_ms']:.2f})")
            else:
                cells.append("–")
        def ratio(other):
            return f"{rps['percpu-kv'] / rps[other]:.2f}×" if "percpu-kv" in rps and other in rps else "–"
        lines.append(f"| {t} | " + " | ".join(cells) + f" | {ratio('redis-server')} | {ratio('garnet-server')} |")
    lines.append("")
open(os.path.join(out, "results.md"), "w").write("\n".join(lines))
print("\n".join(lines))

# A grouped bar chart of requests/s per test, one panel per mode (plain SVG: no plotting library needed).
colors = {"percpu-kv": "#2b7bb9", "redis-server": "#d9534f", "garnet-server": "#5cb85c"}
panel_w, panel_h, left, top = 520, 260, 70, 40
svg = []
width = panel_w * len(modes) + 40
height = panel_h + 120
svg.append(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">')
svg.append(f'<text x="10" y="18" font-size="13">redis-benchmark requests/s ({note})</text>')
for i, m in enumerate(modes):
    x0 = 20 + i * panel_w
    vals = [data.get(s, {}).get(m, {}).get(t, {}).get("rps", 0) for s in servers for t in tests]
    peak = max(vals + [1])
    svg.append(f'<text x="{x0 + left}" y="{top - 6}" font-size="12">{mode_names[m]}</text>')
    plot_w = panel_w - left - 20
    group = plot_w / max(len(tests), 1)
    bar = group / (len(servers) + 1)
    for g in range(5):
        y = top + panel_h - panel_h * g / 4
        svg.append(f'<line x1="{x0 + left}" x2="{x0 + left + plot_w}" y1="{y}" y2="{y}" stroke="#ddd"/>')
        svg.append(f'<text x="{x0 + left - 4}" y="{y + 4}" text-anchor="end">{peak * g / 4 / 1000:.0f}k</text>')
    for ti, t in enumerate(tests):
        for si, s in enumerate(servers):
            v = data.get(s, {}).get(m, {}).get(t, {}).get("rps", 0)
            h = panel_h * v / peak
            x = x0 + left + ti * group + si * bar + bar / 2
            svg.append(f'<rect x="{x:.1f}" y="{top + panel_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{colors[s]}"/>')
        svg.append(f'<text x="{x0 + left + ti * group + group / 2:.1f}" y="{top + panel_h + 14}" text-anchor="middle">{t}</text>')
for si, s in enumerate(servers):
    svg.append(f'<rect x="{20 + si * 140}" y="{height - 30}" width="12" height="12" fill="{colors[s]}"/><text x="{36 + si * 140}" y="{height - 20}">{s}</text>')
svg.append("</svg>")
open(os.path.join(out, "chart.svg"), "w").write("\n".join(svg))
