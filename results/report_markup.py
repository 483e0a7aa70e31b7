"""The reports' building blocks: tables as Markdown and as HTML, embedded PNGs, the page's CSS.

Shared by :mod:`mdsearch.results.report` and the sections it composes
(:mod:`mdsearch.results.supernet_report`), so every table of a report looks and wraps alike.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "REPORT_CSS",
    "SYNTHETIC_NOTICE",
    "html_head",
    "html_table",
    "keep_intervals_whole",
    "markdown_head",
    "markdown_table",
    "png_img",
    "settings_table",
]

#: What every report of a run on generated images says first.
SYNTHETIC_NOTICE = (
    "Synthetic data: this run searched on generated phantom images, not chest X-rays. Its AUCs "
    "check that the pipeline works; they say nothing about how the architectures read real images."
)

# The page is read at 1400 px and narrower: the body is as wide as the window allows up to
# 1320 px, numbers and intervals never wrap, long strings (architectures, paths, notes) wrap
# anywhere rather than widen the page, and a table wider than the page scrolls inside its own box.
#: The report page's style sheet.
REPORT_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1320px;color:#222;padding:0 1em;line-height:1.4}
.table{max-width:100%;overflow-x:auto;margin:.5em 0 1.2em}
table{border-collapse:collapse;font-size:.85em}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3} td{font-variant-numeric:tabular-nums;white-space:nowrap}
td.text{white-space:normal;overflow-wrap:anywhere;min-width:12em} td.wrap{white-space:normal}
td.arch{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.95em;white-space:normal;
overflow-wrap:anywhere}
.synthetic{border:3px solid #c00;background:#fee;padding:.8em 1em;font-weight:bold;color:#900}
.warning{border-left:4px solid #d80;background:#fff6e5;padding:.4em .8em}
.note{border-left:4px solid #888;background:#f6f6f6;padding:.4em .8em}
.caption{color:#444;font-size:.92em;max-width:60em}
img{max-width:100%} code{font-size:.9em} .methods li{margin:.2em 0}
"""


def markdown_table(table: pd.DataFrame) -> str:
    """``table`` as a Markdown (GitHub) table; floats with 3 decimals, ``|`` escaped.

    Example:
        >>> print(markdown_table(pd.DataFrame({"a": [1], "b": ["x|y"]})))
        | a | b |
        |---|---|
        | 1 | x\\|y |
    """

    def cell(value: Any) -> str:
        text = f"{value:.3f}" if isinstance(value, float) else str(value)
        return text.replace("|", "\\|").replace("\n", " ")

    header = "| " + " | ".join(cell(c) for c in table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def keep_intervals_whole(text: str) -> str:
    """``text`` with the spaces of ``estimate [low, high]`` made non-breaking, so a cell that
    wraps breaks before or after an estimate with its interval, never inside it
    (``+0.04 [-0.01, +0.09] n.s.`` wraps only before ``n.s.``)."""
    return re.sub(r"(\S+ )?\[[^\]]*\]", lambda m: m.group(0).replace(" ", "\u00a0"), text)


def html_table(
    table: pd.DataFrame,
    *,
    text: Sequence[str] = (),
    arch: Sequence[str] = (),
    wrap: Sequence[str] = (),
) -> str:
    """``table`` as HTML in a box that scrolls when wider than the page. Cells of the ``text``
    columns wrap (prose, lists); those of the ``arch`` columns wrap anywhere in a monospace font;
    those of the ``wrap`` columns wrap between words but never inside an interval; every other
    cell (numbers, intervals) stays on one line."""
    esc = html.escape
    classes = {c: "text" for c in text} | {c: "arch" for c in arch} | {c: "wrap" for c in wrap}
    head = "".join(f"<th>{esc(str(c))}</th>" for c in table.columns)
    body = []
    for row in table.itertuples(index=False):
        cells = []
        for column, value in zip(table.columns, row):
            shown = (
                "-" if value is None or (isinstance(value, float) and np.isnan(value)) else value
            )
            shown = f"{shown:.3f}" if isinstance(shown, float) else str(shown)
            cls = f' class="{classes[column]}"' if column in classes else ""
            if classes.get(column) == "wrap":
                shown = keep_intervals_whole(shown)
            cells.append(f"<td{cls}>{esc(shown)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<div class="table"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def png_img(data: bytes, alt: str) -> str:
    """An ``<img>`` holding the PNG ``data`` inline (base64), so the page opens offline."""
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">'


def markdown_head(name: str, synthetic: bool) -> list[str]:
    """The Markdown report's title and (for synthetic data) the notice, as lines."""
    out = [f"# mdsearch report: {name}", ""]
    if synthetic:
        out += [f"> **{SYNTHETIC_NOTICE}**", ""]
    return out


def html_head(name: str, synthetic: bool) -> list[str]:
    """The HTML page's head, title and (for synthetic data) the notice, as parts."""
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>mdsearch report: {esc(name)}</title>",
        f"<style>{REPORT_CSS}</style></head><body>",
        f"<h1>mdsearch report: {esc(name)}</h1>",
    ]
    if synthetic:
        parts.append(f'<p class="synthetic">{esc(SYNTHETIC_NOTICE)}</p>')
    return parts


def settings_table(config: Mapping[str, Any]) -> pd.DataFrame:
    """A run's config.json as a two-column table (``setting``, ``value``), nested keys joined
    with dots, a typed setting equal to its resolved value listed once, the latency table's
    entries counted rather than listed."""

    def walk(prefix: str, value: Any) -> list[tuple[str, str]]:
        if isinstance(value, Mapping):
            out = []
            for key, sub in value.items():
                out.extend(walk(f"{prefix}.{key}" if prefix else str(key), sub))
            return out
        if isinstance(value, (list, tuple)):
            return [(prefix, ", ".join(str(v) for v in value))]
        return [(prefix, str(value))]

    rows = walk("", dict(config))
    # config.json keeps the settings as typed (``settings.*``) and the resolved blocks the run
    # used (``proxy.*``, ``objectives``, ``seed``...): a setting equal to its resolved value is
    # listed once.
    resolved = {key: value for key, value in rows if not key.startswith("settings.")}
    rows = [
        (key, value)
        for key, value in rows
        if not (key.startswith("settings.") and resolved.get(key[len("settings.") :]) == value)
    ]
    entries = [r for r in rows if r[0].startswith("latency.table.")]
    if entries:  # the table's times are in config.json; one line here is enough
        rows = [r for r in rows if not r[0].startswith("latency.table.")]
        rows.append(("latency.table", f"{len(entries)} entries (times in config.json)"))
    return pd.DataFrame(rows, columns=["setting", "value"])
