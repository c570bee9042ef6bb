"""Markdown summary and PNG plots of an evaluation (matplotlib, Agg backend: no display)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

from simulator.evaluate import EvaluationResult  # noqa: E402
from simulator.labels import Label, parse_time  # noqa: E402

Series = Sequence[tuple[datetime | str, float]]
_COLOURS = {"kpi": "#f4a261", "stock": "#9d4edd", "fraud": "#e63946"}


def plot_series(series: Series, path: str | Path, *, labels: Sequence[Label] = (),
                anomalies: Sequence[Mapping[str, Any]] = (), matched: set[int] | None = None,
                metric: str | None = None, title: str = "") -> Path:
    """One KPI series; label windows shaded; anomalies on `metric` marked where they occurred
    (green triangle = matched to a label, red cross = false alarm)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    times = [parse_time(t) for t, _ in series]
    x = mdates.date2num(times)
    values = [v for _, v in series]
    fig, ax = plt.subplots(figsize=(12, 3.6), dpi=100)
    ax.plot(x, values, lw=0.9, color="#264653", label=metric or "value")
    shown: set[str] = set()
    for lab in labels:
        colour = _COLOURS.get(lab.kind, "#aaaaaa")
        ax.axvspan(float(mdates.date2num(lab.start)), float(mdates.date2num(lab.end)), color=colour, alpha=0.25,
                   label=None if lab.kind in shown else f"{lab.kind} incident")
        shown.add(lab.kind)
        ax.annotate(lab.type, (float(mdates.date2num(lab.start)), 1.0), xycoords=("data", "axes fraction"), fontsize=7,
                    rotation=90, va="top", ha="right", color="#333333")
    finite = [v for v in values if not math.isnan(v)]
    level = (max(finite) if finite else 1.0)
    for i, a in enumerate(anomalies):
        if metric and a.get("metric") != metric:
            continue
        t = parse_time(a["occurred_at"])
        y = _value_at(times, values, t, level)
        ok = matched is not None and i in matched
        ax.plot([float(mdates.date2num(t))], [y], marker="^" if ok else "x", ms=8, color="#2a9d8f" if ok else "#d62828", ls="none")
    ax.set_title(title or (metric or ""))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M"))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=7)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)
    return path


def _value_at(times: list[datetime], values: list[float], t: datetime, default: float) -> float:
    if not times:
        return default
    best = min(range(len(times)), key=lambda i: abs((times[i] - t).total_seconds()))
    v = values[best]
    return default if math.isnan(v) else v


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{100 * v:.0f}%" if pct else (f"{v:.2f}" if isinstance(v, float) else str(v))


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def render_markdown(result: EvaluationResult, *, title: str = "Evaluation", meta: Mapping[str, Any] | None = None,
                    figures: Sequence[Path] = (), relative_to: Path | None = None) -> str:
    lines = [f"# {title}", ""]
    if meta:
        lines += [f"- {k}: {v}" for k, v in meta.items() if not isinstance(v, list | dict)] + [""]
    lines += [f"Matching tolerance ±{_dur(result.tolerance_seconds)}; detection delay measured from the "
              f"incident start to `{result.delay_basis}`; KPI false alarms per 1,000 of "
              f"{result.kpi_buckets} evaluated buckets, fraud false alarms per 1,000 evaluated payment/return "
              "events.", "",
              "| type | kind | labels | detected | recall | event recall | delay median | delay max |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
    for t, r in sorted(result.per_type.items(), key=lambda kv: (kv[1].kind, kv[0])):
        lines.append(f"| {t} | {r.kind} | {r.labels} | {r.detected} | {_fmt(r.recall, True)} | "
                     f"{_fmt(r.event_recall, True)} | {_dur(r.delay(0.5))} | {_dur(r.delay(1.0))} |")
    c = result.counts
    lines += ["", "| | KPI | fraud | all |", "|---|---:|---:|---:|",
              f"| anomalies | {c['kpi_anomalies']} | {c['fraud_anomalies']} | {c['anomalies']} |",
              f"| precision | {_fmt(result.precision['kpi'], True)} | {_fmt(result.precision['fraud'], True)} | "
              f"{_fmt(result.precision['all'], True)} |",
              f"| false alarms / 1,000 | {_fmt(result.false_alarms_per_1000['kpi'])} | "
              f"{_fmt(result.false_alarms_per_1000['fraud'])} | |", ""]
    if result.event_level:
        e = result.event_level
        lines += [f"Event-level fraud: precision {_fmt(e['precision'], True)}, recall {_fmt(e['recall'], True)} "
                  f"({int(e['true_positives'])} of {int(e['fraud_events'])} fraudulent events flagged, "
                  f"{int(e['flagged'])} flagged of {int(e['evaluated_events'])} evaluated).", ""]
    if result.precision_by_metric:
        lines += ["| metric | precision |", "|---|---:|"]
        lines += [f"| {m} | {_fmt(p, True)} |" for m, p in result.precision_by_metric.items()] + [""]
    if result.precision_by_detector:
        lines += ["| detector | precision |", "|---|---:|"]
        lines += [f"| {m} | {_fmt(p, True)} |" for m, p in result.precision_by_detector.items()] + [""]
    for f in figures:
        rel = f.relative_to(relative_to) if relative_to else f
        lines.append(f"![{f.stem}]({rel.as_posix()})")
    return "\n".join(lines).rstrip() + "\n"


def write_report(result: EvaluationResult, out_dir: str | Path, *, labels: Sequence[Label],
                 anomalies: Sequence[Mapping[str, Any]], series: Mapping[str, Series] | None = None,
                 title: str = "Evaluation", meta: Mapping[str, Any] | None = None) -> dict[str, Path]:
    """Write `report.md` and one `plot_<metric>.png` per series into out_dir.

    `series` maps a metric name (matched against anomaly `metric`) to (time, value) points.
    Labels are shaded on a plot when the metric is theirs or related to them.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    matched = {i for idx in result.matches.values() for i in idx}
    figures: list[Path] = []
    for metric, points in (series or {}).items():
        relevant = [lab for lab in labels if metric in lab.metrics]
        figures.append(plot_series(points, out / f"plot_{metric}.png", labels=relevant, anomalies=anomalies,
                                   matched=matched, metric=metric, title=f"{metric}: incidents and detections"))
    md = out / "report.md"
    md.write_text(render_markdown(result, title=title, meta=meta, figures=figures, relative_to=out),
                  encoding="utf-8")
    return {"markdown": md, **{f.stem: f for f in figures}}
