"""Analytics from the journal: jobs per day by route and outcome, failure rate, durations, cost.

Figures are computed at request time from the jobs created in the window (the
journal is the only source of truth; nothing is kept here) and drawn as
server-rendered SVG, so the charts need no script and nothing from elsewhere.
Each bar carries ``data-*`` attributes with its figure, for people using a
screen reader (a ``<title>``) and for tests. Days are UTC.
"""

from __future__ import annotations

import calendar
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..i18n import N_
from ..journal import Job, JobStatus
from ..summary import job_cost

if TYPE_CHECKING:
    from .state import JournalReader

__all__ = ["analytics_view", "analytics_charts", "percentile", "OUTCOMES"]

OUTCOMES = ("done", "failed", "other")  # other: duplicates, and jobs not finished yet
_ROUTE_COLOURS = ("#0969da", "#8250df", "#bf3989", "#1a7f37", "#9a6700", "#57606a", "#cf222e")
_COLOURS = {"done": "#1a7f37", "failed": "#cf222e", "other": "#8c959f", "cpu": "#0969da", "gpu": "#8250df",
            "p50": "#0969da", "p95": "#9a6700", "rate": "#cf222e"}


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of ``values`` by linear interpolation; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _day(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def _outcome(job: Job) -> str:
    if job.status == JobStatus.DONE:
        return "done"
    if job.status == JobStatus.FAILED:
        return "failed"
    return "other"


def analytics_view(daemon: JournalReader, days: int = 30, now: float | None = None) -> dict[str, Any]:
    """The figures of the last ``days`` UTC days (today included), as plain data (also /api/analytics)."""
    now = time.time() if now is None else now
    days = max(1, min(days, 366))
    first = calendar.timegm(time.strptime(_day(now - (days - 1) * 86400), "%Y-%m-%d"))  # that day's 00:00 UTC
    labels = [_day(first + i * 86400 + 43200) for i in range(days)]
    per_day: dict[str, dict[str, Any]] = {
        d: {"day": d, "jobs": 0, "done": 0, "failed": 0, "other": 0, "by_route": {}, "cpu_seconds": 0.0,
            "gpu_seconds": 0.0, "cost": 0.0} for d in labels}
    durations: dict[str, list[float]] = {}
    routes: dict[str, dict[str, int]] = {}
    prices = daemon.config.metrics
    for job in daemon.journal.jobs_since(first):
        day = per_day.get(_day(job.created_at))
        if day is None:
            continue
        outcome = _outcome(job)
        day["jobs"] += 1
        day[outcome] += 1
        by_route = day["by_route"].setdefault(job.route, {o: 0 for o in OUTCOMES})
        by_route[outcome] += 1
        totals = routes.setdefault(job.route, {o: 0 for o in OUTCOMES})
        totals[outcome] += 1
        cost = job_cost(job, prices)
        day["cpu_seconds"] += cost["cpu_seconds"]
        day["gpu_seconds"] += cost["gpu_seconds"]
        day["cost"] += cost["estimated"]
        if job.status == JobStatus.DONE and job.started_at is not None and job.finished_at is not None:
            durations.setdefault(job.route, []).append(max(0.0, job.finished_at - job.started_at))
    for d in per_day.values():
        finished = d["done"] + d["failed"]
        d["failure_rate"] = round(d["failed"] / finished, 4) if finished else None
        d["cpu_seconds"] = round(d["cpu_seconds"], 3)
        d["gpu_seconds"] = round(d["gpu_seconds"], 3)
        d["cost"] = round(d["cost"], 6)
    done = sum(d["done"] for d in per_day.values())
    failed = sum(d["failed"] for d in per_day.values())
    return {
        "days": list(per_day.values()),
        "routes": {
            route: {**counts, "p50_seconds": _round(percentile(durations.get(route, []), 0.5)),
                    "p95_seconds": _round(percentile(durations.get(route, []), 0.95)),
                    "timed": len(durations.get(route, []))}
            for route, counts in sorted(routes.items())
        },
        "totals": {"jobs": sum(d["jobs"] for d in per_day.values()), "done": done, "failed": failed,
                   "failure_rate": round(failed / (done + failed), 4) if done + failed else None,
                   "cost": round(sum(d["cost"] for d in per_day.values()), 6),
                   "cpu_seconds": round(sum(d["cpu_seconds"] for d in per_day.values()), 3),
                   "gpu_seconds": round(sum(d["gpu_seconds"] for d in per_day.values()), 3)},
        "currency": prices.currency,
        "window_days": days,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


# -- charts --------------------------------------------------------------------------------------
# Geometry only: the SVG markup is the ``_chart.html`` template's, so every label is escaped there.

_W, _H, _PAD_L, _PAD_B, _PAD_T = 760, 220, 48, 34, 12
#: Legend names of the series, translated where they are shown.
_KEY_LABELS = {"done": N_("done"), "failed": N_("failed"), "other": N_("other"), "cpu": "cpu", "gpu": "gpu",
               "p50": "p50", "p95": "p95", "rate": N_("rate"), "cost": N_("cost")}


def _nice_max(value: float) -> float:
    """The chart's top: four grid steps of a round size (1, 2, 2.5 or 5 times a power of ten)."""
    if value <= 0:
        return 4.0
    quarter = value / 4
    exp = 10 ** math.floor(math.log10(quarter))
    for step in (1, 2, 2.5, 5, 10):
        if quarter <= step * exp:
            return float(4 * step * exp)
    return float(40 * exp)


def _fmt(value: float) -> str:
    if value >= 100 or value == int(value):
        return f"{value:.0f}"
    return f"{value:.2g}" if value < 0.1 else f"{value:.1f}"


def _chart(chart_id: str, title: str, top: float, unit: str, labels: list[str], bars: list[dict[str, Any]],
           keys: tuple[str, ...], colour: dict[str, str], gettext: Callable[[str], str]) -> dict[str, Any]:
    plot_h = _H - _PAD_B - _PAD_T
    grid = [{"x1": _PAD_L, "x2": _W, "y": f"{_PAD_T + plot_h * i / 4:.1f}", "ty": f"{_PAD_T + plot_h * i / 4 + 4:.1f}",
             "label": f"{_fmt(top * (1 - i / 4))}{unit}"} for i in range(5)]
    step = max(1, math.ceil(len(labels) / 10))
    slot = (_W - _PAD_L) / max(1, len(labels))
    ticks = [{"x": f"{_PAD_L + slot * (i + 0.5):.1f}", "y": _H - _PAD_B + 14,
              "label": label[5:] if len(label) == 10 else label} for i, label in enumerate(labels) if i % step == 0]
    for b in bars:
        b["key_label"] = _key_label(b["key"], gettext)
        b["shown"] = f"{_fmt(float(b['value']))}{unit}"
    return {"id": chart_id, "title": title, "width": _W, "height": _H, "grid": grid, "ticks": ticks, "bars": bars,
            "legend": [{"fill": colour.get(k, "#57606a"), "label": _key_label(k, gettext)} for k in keys],
            "legend_x": _PAD_L + 4, "legend_y": _PAD_T + 10}


def _key_label(key: str, gettext: Callable[[str], str]) -> str:
    known = _KEY_LABELS.get(key)
    return gettext(known) if known is not None else key


def _stacked(chart_id: str, title: str, rows: list[dict[str, Any]], keys: tuple[str, ...], labels: list[str],
             gettext: Callable[[str], str], unit: str = "", colours: dict[str, str] | None = None) -> dict[str, Any]:
    colour = {**_COLOURS, **(colours or {})}
    top = _nice_max(max((sum(float(r[k] or 0) for k in keys) for r in rows), default=0.0))
    plot_h = _H - _PAD_B - _PAD_T
    slot = (_W - _PAD_L) / max(1, len(rows))
    width = max(2.0, slot * 0.7)
    bars = []
    for i, r in enumerate(rows):
        y = float(_H - _PAD_B)
        for k in keys:
            v = float(r[k] or 0)
            if v <= 0:
                continue
            h = plot_h * v / top
            y -= h
            bars.append({"key": k, "label": labels[i], "value": f"{v:g}",
                         "x": f"{_PAD_L + slot * i + (slot - width) / 2:.1f}", "y": f"{y:.1f}",
                         "w": f"{width:.1f}", "h": f"{h:.1f}", "fill": colour.get(k, "#57606a")})
    return _chart(chart_id, title, top, unit, labels, bars, keys, colour, gettext)


def _grouped(chart_id: str, title: str, rows: list[dict[str, Any]], keys: tuple[str, ...], labels: list[str],
             unit: str, gettext: Callable[[str], str]) -> dict[str, Any]:
    top = _nice_max(max((float(r[k] or 0) for r in rows for k in keys), default=0.0))
    plot_h = _H - _PAD_B - _PAD_T
    slot = (_W - _PAD_L) / max(1, len(rows))
    width = max(2.0, slot * 0.7 / len(keys))
    bars = []
    for i, r in enumerate(rows):
        for j, k in enumerate(keys):
            if r[k] is None:
                continue
            v = float(r[k])
            h = plot_h * v / top
            x = _PAD_L + slot * i + (slot - width * len(keys)) / 2 + width * j
            bars.append({"key": k, "label": labels[i], "value": f"{v:g}", "x": f"{x:.1f}",
                         "y": f"{_H - _PAD_B - h:.1f}", "w": f"{width:.1f}", "h": f"{h:.1f}",
                         "fill": _COLOURS.get(k, "#57606a")})
    return _chart(chart_id, title, top, unit, labels, bars, keys, _COLOURS, gettext)


def analytics_charts(view: dict[str, Any], gettext: Callable[[str], str]) -> list[dict[str, Any]]:
    """The analytics page's charts as geometry for the ``_chart.html`` template, titles in ``gettext``'s language."""
    _ = gettext
    days = view["days"]
    labels = [d["day"] for d in days]
    rate_rows = [{"rate": None if d["failure_rate"] is None else round(100 * d["failure_rate"], 2)} for d in days]
    routes = view["routes"]
    route_rows = [{"p50": r["p50_seconds"], "p95": r["p95_seconds"]} for r in routes.values()]
    cost_rows = [{"cpu": d["cpu_seconds"], "gpu": d["gpu_seconds"]} for d in days]
    money_rows = [{"cost": d["cost"]} for d in days]
    route_days = [{r: sum(d["by_route"].get(r, {}).values()) for r in routes} for d in days]
    route_colours = {r: _ROUTE_COLOURS[i % len(_ROUTE_COLOURS)] for i, r in enumerate(routes)}
    return [
        _stacked("jobs-per-day", _("Jobs per day by outcome"), days, OUTCOMES, labels, gettext),
        _stacked("jobs-per-day-by-route", _("Jobs per day by route"), route_days, tuple(routes), labels, gettext,
                 colours=route_colours),
        _grouped("failure-rate", _("Failure rate per day (failed / finished)"), rate_rows, ("rate",), labels, " %",
                 gettext),
        _grouped("duration-per-route", _("Job duration per route: p50 and p95 (done jobs)"), route_rows,
                 ("p50", "p95"), list(routes), " s", gettext),
        _stacked("lane-seconds-per-day", _("CPU and GPU seconds per day"), cost_rows, ("cpu", "gpu"), labels, gettext,
                 " s"),
        _grouped("cost-per-day", _("Estimated cost per day (%(currency)s)") % {"currency": view["currency"]},
                 money_rows, ("cost",), labels, "", gettext),
    ]
