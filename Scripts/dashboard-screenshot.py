#!/usr/bin/env python3
"""Renders the panels of Deploy/grafana/ragd-dashboard.json from a real run, as
a PNG (Grafana itself is not needed): scrapes a ragd /metrics endpoint every
INTERVAL seconds for DURATION seconds, computes what each panel's PromQL
computes (rates between scrapes, histogram quantiles from bucket deltas, sums
by label) and draws them with matplotlib.

    Scripts/dashboard-screenshot.py METRICS_URL OUT.png [DURATION=90] [INTERVAL=2]

Scripts/dashboard-screenshot.sh starts a server and a workload and calls this."""
import json
import sys
import time
import urllib.request
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import re  # noqa: E402

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text):
    """The Prometheus text format's samples: {(name, frozenset(labels)): value}."""
    out = {}
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if not m or line.startswith("#"):
            continue
        labels = frozenset(LABEL.findall(m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


url, out = sys.argv[1], sys.argv[2]
duration = float(sys.argv[3]) if len(sys.argv) > 3 else 90
interval = float(sys.argv[4]) if len(sys.argv) > 4 else 2

scrapes = []  # (t, {(name, frozenset(labels)): value})
start = time.time()
while time.time() - start < duration:
    try:
        text = urllib.request.urlopen(url, timeout=5).read().decode()
    except OSError:
        time.sleep(interval)
        continue
    scrapes.append((time.time() - start, parse(text)))
    time.sleep(interval)
if len(scrapes) < 3:
    sys.exit("too few scrapes")


def series(name, by, where=None):
    """Values of `name` summed by label `by` at every scrape: {label: [v...]}."""
    out = defaultdict(lambda: [0.0] * len(scrapes))
    for i, (_, samples) in enumerate(scrapes):
        for (n, labels), v in samples.items():
            d = dict(labels)
            if n != name or (where and any(d.get(k) != w for k, w in where.items())):
                continue
            out[tuple(d.get(b, "") for b in by)][i] += v
    return out


def rate(values):
    return [max(0.0, (values[i] - values[i - 1]) / (scrapes[i][0] - scrapes[i - 1][0])) for i in range(1, len(values))]


def quantile(q, name, by):
    """histogram_quantile over bucket increases between consecutive scrapes."""
    buckets = defaultdict(lambda: defaultdict(lambda: [0.0] * len(scrapes)))
    for i, (_, samples) in enumerate(scrapes):
        for (n, labels), v in samples.items():
            if n != name + "_bucket":
                continue
            d = dict(labels)
            buckets[tuple(d.get(b, "") for b in by)][float(d["le"])][i] += v
    out = {}
    for key, bs in buckets.items():
        les = sorted(bs)
        values = []
        for i in range(1, len(scrapes)):
            counts = [bs[le][i] - bs[le][i - 1] for le in les]
            total = counts[-1]
            if total <= 0:
                values.append(float("nan"))
                continue
            rank, prev_le, prev_c = q * total, 0.0, 0.0
            for le, c in zip(les, counts):
                if c >= rank:
                    if le == float("inf"):
                        values.append(prev_le)
                    else:
                        values.append(prev_le + (le - prev_le) * (rank - prev_c) / max(c - prev_c, 1e-12))
                    break
                prev_le, prev_c = le, c
        out[key] = values
    return out


times = [t for t, _ in scrapes]
dash = json.load(open("Deploy/grafana/ragd-dashboard.json"))
titles = [p["title"] for p in dash["panels"]]


def label(key):
    return " ".join(k for k in key if k) or "total"


panels = [
    (titles[0], {label(k): rate(v) for k, v in series("rag_queries_total", ["status"]).items()}, "queries/s"),
    (titles[1], {label(k): rate(v) for k, v in series("rag_rpc_errors_total", ["method", "code"]).items()}, "errors/s"),
    (titles[2], {f"p{int(q * 100)} {label(k)}": v for q in (0.5, 0.99)
                 for k, v in quantile(q, "rag_query_duration_seconds", ["component"]).items() if k[0] in ("total", "search", "embed")}, "seconds"),
    (titles[3], {f"partition {label(k)}": v for k, v in quantile(0.99, "rag_partition_search_duration_seconds", ["partition"]).items()}, "seconds"),
    (titles[4], {}, "hit rate"),
    (titles[5], {label(k): rate(v) for k, v in series("rag_index_documents_total", []).items()}, "documents/s"),
    (titles[6], {label(k): v[1:] for k, v in series("rag_index_chunks", ["collection"]).items()}, "chunks"),
    (titles[7], {**{f"{label(k)} waiting": v[1:] for k, v in series("rag_work_queue_waiting", ["queue"]).items()},
                 **{f"{label(k)} busy": v[1:] for k, v in series("rag_work_queue_busy", ["queue"]).items()}}, ""),
    (titles[8], {"connections": series("rag_open_connections", []).get((), [0] * len(scrapes))[1:],
                 "calls in flight": series("rag_inflight_calls", []).get((), [0] * len(scrapes))[1:]}, ""),
]
hits, total = series("rag_cache_requests_total", ["level"], {"result": "hit"}), series("rag_cache_requests_total", ["level"])
for key, h in hits.items():
    rh, rt = rate(h), rate(total[key])
    panels[4][1][label(key)] = [a / b if b > 0 else float("nan") for a, b in zip(rh, rt)]

plt.style.use("dark_background")
fig, axes = plt.subplots(3, 3, figsize=(18, 11))
fig.suptitle(f"Ragd — {len(scrapes)} scrapes of {url} over {times[-1]:.0f} s", fontsize=14)
for ax, (title, lines, unit) in zip(axes.flat, panels):
    ax.set_title(title, fontsize=11, loc="left")
    ax.set_facecolor("#161719")
    ax.grid(color="#333", linewidth=0.5)
    for name, values in sorted(lines.items())[:8]:
        ax.plot(times[1:], values, linewidth=1.4, label=name)
    if lines:
        ax.legend(fontsize=7, loc="upper left")
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="#888")
    ax.set_ylabel(unit, fontsize=8)
    ax.tick_params(labelsize=7)
fig.tight_layout()
fig.savefig(out, dpi=80, facecolor="#111217")
print(f"wrote {out}: {len(scrapes)} scrapes")
