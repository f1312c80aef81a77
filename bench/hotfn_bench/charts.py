"""The PNG charts of a run (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import os
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

from .functions import FUNCTIONS  # noqa: E402

HOT, COLD = "#1f77b4", "#d62728"
SERIES = ["#555555", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]


def _num(ms: float) -> str:
    return f"{ms:.3f}" if ms < 1 else f"{ms:.3g}" if ms < 100 else f"{ms:,.0f}"


def _ecdf(samples: list[float]) -> tuple[list[float], list[float]]:
    data = sorted(samples)
    n = len(data)
    return data, [(i + 1) / n for i in range(n)]


def hot_cold(results: dict[str, Any], path: str) -> bool:
    fns = results["sections"].get("hot_cold", {}).get("functions")
    if not fns:
        return False
    keys = list(fns)
    cols = min(3, len(keys))
    rows = (len(keys) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows), squeeze=False)
    lo = min(min(f["samples_hot_ms"]) for f in fns.values()) * 0.8
    hi = max(max(f["samples_cold_ms"]) for f in fns.values()) * 1.25
    for ax, key in zip(axes.flat, keys):
        f = fns[key]
        for samples, color, name in ((f["samples_hot_ms"], HOT, "hot"), (f["samples_cold_ms"], COLD, "cold")):
            xs, ys = _ecdf(samples)
            ax.step(xs, ys, where="post", color=color, lw=1.8,
                    label=f"{name}: pooled p50 {_num(xs[len(xs) // 2])} ms (n={len(samples)})")
        ax.set_xscale("log")
        ax.set_xlim(lo, hi)
        ax.set_ylim(0, 1.02)
        ax.set_title(f"{FUNCTIONS[key].label}: cold/hot p50 = {f['ratio_p50']:,.0f}×", fontsize=11)
        ax.set_xlabel("latency (ms, log scale)")
        ax.set_ylabel("fraction of calls ≤ x")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="center right", fontsize=8.5)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.suptitle("Latency distribution of a 100-byte echo via HTTP: hot (warm container) vs cold "
                 "(container per call)", fontsize=12)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def throughput(results: dict[str, Any], path: str) -> bool:
    load = results["sections"].get("load")
    if not load:
        return False
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5.2))
    labels = {"baseline": "baseline: HTTP front, no container", "mc1": "1 route, max_concurrency 1",
              "mc4": "1 route, max_concurrency 4"}
    for color, (name, by_clients) in zip(SERIES, load["targets"].items()):
        clients = [int(c) for c in by_clients]
        label = labels.get(name, f"{name[6:]} routes at once" if name.startswith("routes") else name)
        style = "--" if name == "baseline" else "-"
        left.plot(clients, [x["rps"]["median"] for x in by_clients.values()], style, marker="o", color=color, label=label)
        right.plot(clients, [x["p99_ms"]["median"] for x in by_clients.values()], style, marker="o", color=color,
                   label=label)
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_xticks(load["clients"], [str(c) for c in load["clients"]])
        ax.set_xlabel("concurrent keep-alive clients (wrk connections)")
        ax.grid(True, which="both", alpha=0.3)
    left.set_ylabel("requests / s (median of runs)")
    left.set_ylim(bottom=0)
    left.axhline(2000, color="#999999", lw=0.8, ls=":", label="issue 3 goal: 2000 req/s (at 8 clients)")
    left.set_title("Throughput, hot Python echo, 100-byte body")
    right.set_yscale("log")
    right.set_ylabel("p99 latency (ms, log scale)")
    right.set_title("p99 latency")
    fig.legend(*left.get_legend_handles_labels(), ncol=3, fontsize=9, loc="lower center", frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _smooth(values: list[float]) -> list[float]:
    """Calls 1-10 as measured; then a trailing median of 9 calls up to call 100, of 49 after,
    so that the trend shows through the noise on a log axis."""
    out = []
    for i, value in enumerate(values):
        window = 1 if i < 10 else 9 if i < 100 else 49
        chunk = sorted(values[max(0, i - window + 1): i + 1])
        out.append(chunk[len(chunk) // 2])
    return out


def jit(results: dict[str, Any], path: str) -> bool:
    data = results["sections"].get("jit")
    if not data:
        return False
    fig, ax = plt.subplots(figsize=(9, 5))
    for color, (key, x) in zip(SERIES[1:], data.items()):
        curve = x["curve_ms"]
        ax.plot(range(1, len(curve) + 1), _smooth(curve), color=color, lw=1.6 if x["jvm"] else 1.0,
                ls="-" if x["jvm"] else "--", label=FUNCTIONS[key].label + ("" if x["jvm"] else " (not JVM)"))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("call number on a fresh warm container (log scale)")
    ax.set_ylabel("latency via HTTP (ms, log scale)")
    ax.set_title("JIT warm-up: parse and sum 1000 JSON numbers, call by call\n"
                 "(median over fresh containers; after call 10 a trailing median of 9 calls, of 49 after call 100)", fontsize=11)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def overhead(results: dict[str, Any], path: str) -> bool:
    data = results["sections"].get("overhead")
    if not data:
        return False
    fig, ax = plt.subplots(figsize=(12, 1.6 + 1.2 * len(data)))
    colors = ["#c6dbef", "#6baed6", "#fdae6b", "#fd8d3c", "#74c476"]
    short = ["client + loopback TCP", "HTTP front (h11, trio)", "API around invoker", "invoker/pool",
             "frame round trip to the container"]
    seen: set[str] = set()
    for row, (key, x) in enumerate(data.items()):
        parts = [a for a in x["hot_attribution"] if not a["part"].startswith("total")]
        left = 0.0
        for i, a in enumerate(parts):
            name = short[i] if i < len(short) else a["part"][:20]
            width = max(a["ms"], 0.0)
            ax.barh(row, width, left=left, color=colors[i % len(colors)], edgecolor="white",
                    label=name if name not in seen else None)
            if width > 0.02:
                ax.text(left + width / 2, row, f"{a['ms'] * 1000:.0f} µs", ha="center", va="center", fontsize=8)
            seen.add(name)
            left += width
        ax.text(left, row, f"  {left:.3f} ms", va="center", fontsize=9)
    ax.set_yticks(range(len(data)), [FUNCTIONS[k].label for k in data])
    ax.set_xlabel("median latency of a hot HTTP call, split by where it goes (ms)")
    ax.set_title("Hot path attribution (differences of medians measured in alternation)", fontsize=11)
    ax.set_xlim(0, ax.get_xlim()[1] * 1.12)
    ax.invert_yaxis()  # first function on top
    fig.legend(ncol=5, fontsize=8.5, loc="lower center", frameon=False)
    fig.tight_layout(rect=(0, 0.1 + 0.1 / len(data), 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def draw_all(results: dict[str, Any], out_dir: str) -> dict[str, str]:
    """Every chart there is data for: {key: file name}. A chart that fails is skipped (the
    numbers are in report.md either way) and said so in results' errors."""
    drawn = {}
    for key, draw in (("hot_cold", hot_cold), ("throughput", throughput), ("jit", jit), ("overhead", overhead)):
        name = f"{'latency_hot_cold' if key == 'hot_cold' else key}.png"
        try:
            if draw(results, os.path.join(out_dir, name)):
                drawn[key] = name
        except Exception as exc:  # a chart must not lose the report
            results.setdefault("errors", {})[f"chart {key}"] = repr(exc)
    return drawn
