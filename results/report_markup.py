"""The renderers of a report's :class:`~mdsearch.results.document.Document`: Markdown
(``report.md``), one self-contained HTML page (``report.html``) and plain text (the terminal).

Each renders every kind of block the same way wherever it stands, so a section shows the same
text and tables in every form; none reads a file (a figure's PNG travels in its block). The table
primitives (:func:`markdown_table`, :func:`html_table`) and the page's style sheet are here too,
so every table of a report looks and wraps alike.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .document import Block, Bullets, Document, Figure, Paragraph, Section, Table

__all__ = [
    "REPORT_CSS",
    "SYNTHETIC_NOTICE",
    "html_section",
    "html_table",
    "keep_intervals_whole",
    "markdown_section",
    "markdown_table",
    "png_img",
    "render_html",
    "render_markdown",
    "render_text",
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
img{max-width:100%} code{font-size:.9em} li{margin:.2em 0}
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


# -- Markdown ---------------------------------------------------------------------------------
_MARKDOWN_LEAD = {"note": "> **Note:** ", "warning": "> **Warning:** "}


def _markdown_block(block: Block) -> list[str]:
    """A block as Markdown paragraphs (joined with blank lines by the caller)."""
    if isinstance(block, Paragraph):
        return [_MARKDOWN_LEAD.get(block.kind, "") + block.text]
    if isinstance(block, Bullets):
        return ["\n".join(f"- {item}" for item in block.items)] if block.items else []
    if isinstance(block, Table):
        return [*([block.caption] if block.caption else []), markdown_table(block.data)]
    if isinstance(block, Figure):
        return [f"![{block.alt}]({block.file})", *([block.caption] if block.caption else [])]
    raise TypeError(f"not a block of a report: {block!r}")


def markdown_section(section: Section) -> str:
    """One section as Markdown: ``## title`` (none for an untitled section), then its blocks,
    separated by blank lines.

    Example:
        >>> print(markdown_section(Section("Notes", (Paragraph("one", "note"),))))
        ## Notes
        <BLANKLINE>
        > **Note:** one
    """
    parts = [f"## {section.title}"] if section.title else []
    for block in section.blocks:
        parts += _markdown_block(block)
    return "\n\n".join(parts)


def render_markdown(document: Document) -> str:
    """The document as Markdown (``report.md``); the figures are linked by their file names."""
    parts = [f"# {document.title}"] if document.title else []
    if document.notice:
        parts.append(f"> **{document.notice}**")
    parts += [markdown_section(s) for s in document.sections]
    return "\n\n".join(parts) + "\n"


# -- HTML -------------------------------------------------------------------------------------
def _html_block(block: Block) -> list[str]:
    """A block as HTML elements."""
    esc = html.escape
    if isinstance(block, Paragraph):
        cls = "" if block.kind == "text" else f' class="{block.kind}"'
        return [f"<p{cls}>{esc(block.text)}</p>"]
    if isinstance(block, Bullets):
        items = "".join(f"<li>{esc(item)}</li>" for item in block.items)
        return [f"<ul>{items}</ul>"] if block.items else []
    if isinstance(block, Table):
        table = html_table(
            block.data, text=block.text_columns, arch=block.arch_columns, wrap=block.wrap_columns
        )
        return [*([f'<p class="caption">{esc(block.caption)}</p>'] if block.caption else []), table]
    if isinstance(block, Figure):
        img = png_img(block.png, block.alt)
        return [img, *([f'<p class="caption">{esc(block.caption)}</p>'] if block.caption else [])]
    raise TypeError(f"not a block of a report: {block!r}")


def html_section(section: Section) -> str:
    """One section as an HTML ``<section>`` (its ``id`` the section's anchor) with an ``<h2>``."""
    anchor = f' id="{html.escape(section.anchor)}"' if section.anchor else ""
    parts = [f"<section{anchor}>"]
    if section.title:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
    for block in section.blocks:
        parts += _html_block(block)
    parts.append("</section>")
    return "\n".join(parts)


def render_html(document: Document) -> str:
    """The document as one self-contained HTML page (``report.html``): the style sheet inline,
    every figure embedded as a base64 PNG, no script, nothing fetched."""
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(document.title)}</title>",
        f"<style>{REPORT_CSS}</style></head><body>",
    ]
    if document.title:
        parts.append(f"<h1>{esc(document.title)}</h1>")
    if document.notice:
        parts.append(f'<p class="synthetic">{esc(document.notice)}</p>')
    parts += [html_section(s) for s in document.sections]
    parts.append("</body></html>")
    return "\n".join(parts)


# -- plain text -------------------------------------------------------------------------------
def _text_block(block: Block) -> list[str]:
    """A block as lines of plain text; a figure is named by its file."""
    if isinstance(block, Paragraph):
        return [f"{block.kind}: {block.text}" if block.kind in ("note", "warning") else block.text]
    if isinstance(block, Bullets):
        return [f"- {item}" for item in block.items]
    if isinstance(block, Table):
        return [*([block.caption] if block.caption else []), block.data.to_string(index=False)]
    if isinstance(block, Figure):
        return [f"[figure: {block.alt} ({block.file})]"]
    raise TypeError(f"not a block of a report: {block!r}")


def render_text(document: Document) -> str:
    """The document as plain text for a terminal: the notice (``!! ...``), then each section's
    title underlined and its blocks one per line; sections apart by a blank line.

    Example:
        >>> doc = Document("", (Section("", (Paragraph("2 trials"),)),), notice="Synthetic")
        >>> print(render_text(doc))
        !! Synthetic
        2 trials
    """
    head = [document.title] if document.title else []
    if document.notice:
        head.append(f"!! {document.notice}")
    parts = []
    for section in document.sections:
        lines = [section.title, "-" * len(section.title)] if section.title else []
        for block in section.blocks:
            lines += _text_block(block)
        parts.append("\n".join(lines))
    return "\n".join(head + ["\n\n".join(parts)] if parts else head)
