"""``report.html`` of a recipe run: one self-contained page (inline CSS, PNGs embedded as base64, no script, no
external resource) that opens anywhere, plus the report's PNGs in ``RUN_DIR/plots/``.

Built from the run folder alone (manifest, summary, snapshots, stage folders), so ``slimkit report RUN_DIR``
rebuilds it at any time. A figure that cannot be drawn never stops the report: the page names it and says why.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from torch import nn

from slimkit.core.io import atomic_write_bytes
from slimkit.report import run_plots
from slimkit.report.run_folder import RunFolder, open_run, scalar_metrics
from slimkit.report.table import format_bytes, format_count

PLOTS_DIR = "plots"
FIGURES = ("summary.png", "stages.png", "channels.png", "accuracy_vs_macs.png", "accuracy_vs_size.png")
MARK_TEXT = {"int8": "measured on the exported integer model", "sim": "simulated (fake-quant model in PyTorch)"}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;color:#222;
padding:0 1em}
h1{font-size:1.6em}h2{font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0}th,td{padding:.25em .7em;border-bottom:1px solid #eee;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f4f4f4}
td.sim{background:#fff3cd}td.int8{background:#d1e7dd}.meta{color:#555}code{background:#f4f4f4;padding:0 .2em}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{color:#555;font-size:.9em}
.failed{background:#f8d7da;padding:.5em 1em;border-radius:4px}
table.stages td:last-child{text-align:left;font-size:.85em}
"""


@dataclass(frozen=True)
class Figure:
    title: str
    path: Path
    caption: str = ""


class _Page:
    """Collects figures and the reasons the ones that failed could not be drawn."""

    def __init__(self, run: RunFolder) -> None:
        self.run = run
        self.figures: dict[str, list[Figure]] = {}
        self.failures: list[tuple[str, str]] = []

    def attempt(self, section: str, title: str, make: Callable[[], Path | None], caption: str = "") -> None:
        try:
            path = make()
        except Exception as err:  # noqa: BLE001 - a figure must never fail the run; the page says why
            self.failures.append((title, f"{type(err).__name__}: {err}"))
            return
        if path is not None:
            self.figures.setdefault(section, []).append(Figure(title, Path(path), caption))


def _img(figure: Figure) -> str:
    data = base64.b64encode(figure.path.read_bytes()).decode("ascii")
    caption = html.escape(figure.caption or figure.title)
    return (f'<figure><img alt="{html.escape(figure.title)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{caption}</figcaption></figure>")


def _table(headers: list[str], rows: list[list[Any]], classes: list[list[str]] | None = None, *,
           name: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cells = []
        for j, value in enumerate(row):
            css = classes[i][j] if classes else ""
            text = "-" if value is None else str(value)
            cells.append(f'<td class="{css}">{html.escape(text)}</td>' if css else f"<td>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    attr = f' class="{name}"' if name else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _rows_from(before: dict[str, Any], after: dict[str, Any]) -> list[list[str]]:
    """The table of a summary.json written before the rows were kept in it (no marks then)."""
    formats: list[tuple[str, str, Callable[[Any], str]]] = [
        ("accuracy", "accuracy", lambda v: f"{100 * v:.2f}%"), ("params", "params", format_count),
        ("macs", "MACs", format_count), ("size_bytes", "size", format_bytes)]
    formats += [(k, f"latency bs{k.rsplit('bs', 1)[1]}", lambda v: f"{v:.3f} ms")
                for k in sorted(before) if k.startswith("latency_ms")]
    rows = []
    for key, label, fmt in formats:
        b, a = before.get(key), after.get(key)
        if isinstance(b, (int, float)) and isinstance(a, (int, float)):
            change = f"{100 * (a - b):+.2f} pt" if key == "accuracy" else f"{b / a:.2f}x" if a else "-"
            rows.append([label, fmt(b), fmt(a), change])
    return rows


def _summary_section(run: RunFolder) -> str:
    if run.summary is None:
        status = run.manifest.get("status", "unknown")
        return f'<p class="failed">No before/after summary: the run has not finished (status: {html.escape(status)}).</p>'
    rows = run.summary.get("rows") or _rows_from(run.summary.get("before") or {}, run.summary.get("after") or {})
    classes = [["", "", next((m for m in MARK_TEXT if str(row[2]).endswith(f"[{m}]")), ""), ""] for row in rows]
    out = [_table(["", "before", "after", "change"], rows, classes)]
    notes = list(run.summary.get("notes") or [])
    used = {m for m in (run.summary.get("marks") or {}).values()}
    notes += [f"[{m}] {MARK_TEXT[m]}" for m in sorted(used) if m in MARK_TEXT and not any(
        n.startswith(f"[{m}]") for n in notes)]
    if notes:
        out.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    return "".join(out)


def _stage_rows(run: RunFolder, points: list[run_plots.StagePoint]) -> list[list[Any]]:
    counts = {p.stage: p for p in points if p.stage is not None}
    rows = []
    for index, entry in enumerate(run.stages):
        point = counts.get(index)
        metrics = scalar_metrics(entry.get("metrics") or {})
        shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())
        rows.append([f"{index:02d} {entry.get('name')}", entry.get("type"), entry.get("status"),
                     entry.get("seconds"), format_count(point.params) if point else None,
                     format_count(point.macs) if point else None, shown])
    return rows


def _stage_plots(run: RunFolder, page: _Page) -> None:
    for index, entry in enumerate(run.stages):
        folder = run.path / f"{index:02d}-{entry.get('name')}"
        for png in sorted(folder.glob("*.png")) if folder.is_dir() else []:
            page.figures.setdefault("stage plots", []).append(
                Figure(f"{folder.name}/{png.name}", png, f"{folder.name}/{png.name} (drawn by the stage)"))


def _render(run: RunFolder, page: _Page, points: list[run_plots.StagePoint]) -> str:
    from slimkit import __version__

    def figures(section: str) -> str:
        out = []
        for figure in page.figures.get(section, []):
            try:
                out.append(_img(figure))
            except OSError as err:
                page.failures.append((figure.title, f"cannot read {figure.path}: {err.strerror or err}"))
        return "".join(out)

    title = html.escape(f"slimkit report: {run.name}")
    generated = datetime.now(timezone.utc).isoformat(timespec="seconds")
    parts = [f"<h1>{title}</h1>",
             f'<p class="meta">run folder <code>{html.escape(str(run.path))}</code> · started '
             f"{html.escape(str(run.manifest.get('started', '-')))} · status "
             f"{html.escape(str(run.manifest.get('status', '-')))} · report written {generated} by slimkit "
             f"{html.escape(__version__)}</p>",
             "<h2>Before and after</h2>", _summary_section(run), figures("summary"),
             "<h2>Stages</h2>",
             _table(["stage", "type", "status", "seconds", "params", "MACs", "metrics"], _stage_rows(run, points),
                    name="stages"),
             figures("stages")]
    for section, heading in (("channels", "Channels per layer"), ("tradeoff", "Accuracy vs MACs and size"),
                             ("stage plots", "Plots drawn by the stages")):
        body = figures(section)
        if body:
            parts += [f"<h2>{heading}</h2>", body]
    if page.failures:
        items = "".join(f"<li><b>{html.escape(t)}</b>: {html.escape(why)}</li>" for t, why in page.failures)
        parts += ["<h2>Figures not drawn</h2>", f'<div class="failed"><ul>{items}</ul></div>']
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f"<style>{_CSS}</style></head><body>{''.join(parts)}</body></html>\n")


def write_html_report(run_dir: str | os.PathLike, *, factory: Callable[..., nn.Module] | None = None) -> Path:
    """Write ``RUN_DIR/report.html`` and the report's PNGs in ``RUN_DIR/plots/``; return the page's path.

    Args:
        run_dir: a run folder written by ``slimkit compress`` (finished or not).
        factory: builds the architecture when the recipe's model is your own ``package.module:factory``
            (needed only for the per-stage params and MACs; without it the page says they are missing).

    Raises:
        ConfigError: ``run_dir`` is not a run folder (no readable ``manifest.json``).
        OSError: the page cannot be written. A figure that fails raises nothing: the page names it with the reason.
    """
    run = open_run(run_dir)
    plots = run.path / PLOTS_DIR
    for name in FIGURES:  # a figure this run no longer has must not survive from an earlier report
        (plots / name).unlink(missing_ok=True)
    page = _Page(run)
    points: list[run_plots.StagePoint] = []

    def collect() -> None:
        points.extend(run_plots.stage_points(run, factory))

    page.attempt("stages", "params and MACs of each stage's model", lambda: collect() or None)
    page.attempt("summary", "before -> after", lambda: run_plots.summary_figure(run, plots / "summary.png"))
    page.attempt("stages", "model after each stage", lambda: run_plots.stages_figure(points, plots / "stages.png"))
    page.attempt("channels", "channels per layer", lambda: run_plots.channels_figure(run, plots / "channels.png"),
                 "output channels of each Linear/Conv layer, before (reference model) and after (final model)")
    page.attempt("tradeoff", "accuracy vs MACs",
                 lambda: run_plots.accuracy_vs_macs_figure(points, plots / "accuracy_vs_macs.png"))
    page.attempt("tradeoff", "accuracy vs size",
                 lambda: run_plots.accuracy_vs_size_figure(run, plots / "accuracy_vs_size.png"))
    _stage_plots(run, page)
    return atomic_write_bytes(run.path / "report.html", _render(run, page, points).encode("utf-8"))
