"""A report as data: a :class:`Document` of :class:`Section` s, each a title and a few blocks.

Every report of a run is built once in this form (:func:`mdsearch.results.build_report`) and
then rendered, by :func:`~mdsearch.results.report_markup.render_markdown` (``report.md``),
:func:`~mdsearch.results.report_markup.render_html` (``report.html``) and, for the terminal,
:func:`~mdsearch.results.report_markup.render_text`. A block is one of:

- :class:`Paragraph`: prose; a ``note``, a ``warning`` or a ``caption`` is set apart;
- :class:`Bullets`: a list of short statements (methods, notes);
- :class:`Table`: a pandas DataFrame of display strings, with a caption above it and hints
  on which of its columns may wrap in a browser;
- :class:`Figure`: a PNG (bytes) with the file name it is written to beside ``report.md``, its
  alt text and a caption below it.

Blocks hold everything they show: rendering reads no file and computes no statistic.

Example:
    >>> doc = Document("mdsearch report: demo", (Section("Notes", (Bullets(("one",)),)),))
    >>> [s.title for s in doc.sections]
    ['Notes']
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pandas as pd

__all__ = [
    "Block",
    "Bullets",
    "Document",
    "Figure",
    "PARAGRAPH_KINDS",
    "Paragraph",
    "Section",
    "Table",
]

#: What a paragraph can be: plain prose, or set apart as a note, a warning or a caption.
PARAGRAPH_KINDS = ("text", "note", "warning", "caption")


@dataclass(frozen=True)
class Paragraph:
    """One paragraph of prose.

    Attributes:
        text: the text (plain; renderers escape it).
        kind: ``text``, ``note`` (a remark set apart), ``warning`` (something the reader must
            not miss) or ``caption`` (what a nearby table or plot shows).
    """

    text: str
    kind: str = "text"

    def __post_init__(self) -> None:
        if self.kind not in PARAGRAPH_KINDS:
            raise ValueError(f"paragraph kind {self.kind!r}: use one of {PARAGRAPH_KINDS}")


@dataclass(frozen=True)
class Bullets:
    """A list of short statements, in order."""

    items: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", tuple(self.items))


@dataclass(frozen=True, eq=False)
class Table:
    """A table of display values (strings, mostly), one row per DataFrame row.

    Attributes:
        data: the table; its column names are the headers, its index is not shown.
        caption: what the table shows, above it ("": none).
        text_columns: prose columns (errors, settings): wrap like text in a browser.
        arch_columns: architecture strings: wrap anywhere, in a monospace font.
        wrap_columns: columns of words and intervals: wrap between words, never inside
            ``estimate [low, high]``. Every other column stays on one line.
    """

    data: pd.DataFrame
    caption: str = ""
    text_columns: tuple[str, ...] = ()
    arch_columns: tuple[str, ...] = ()
    wrap_columns: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class Figure:
    """A plot as PNG bytes.

    Attributes:
        file: the file name it is written to beside ``report.md`` (``pareto.png``).
        png: the image.
        alt: a short description (HTML ``alt``, Markdown image text).
        caption: what it shows, below it ("": none).
    """

    file: str
    png: bytes
    alt: str
    caption: str = ""


#: A block of a section.
Block = Paragraph | Bullets | Table | Figure


def _anchor(title: str) -> str:
    """``Pareto front`` -> ``pareto-front``: an HTML id made of the title's words."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


@dataclass(frozen=True)
class Section:
    """One section of a report: a title and its blocks, in order.

    Attributes:
        title: the heading ("": a section without one, e.g. the terminal's only section).
        blocks: what the section shows.
        anchor: the HTML ``id`` of the section (default: from the title, ``pareto-front``).
    """

    title: str
    blocks: tuple[Block, ...]
    anchor: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "blocks", tuple(self.blocks))
        if not self.anchor and self.title:
            object.__setattr__(self, "anchor", _anchor(self.title))


@dataclass(frozen=True)
class Document:
    """A whole report: a title, a notice under it, and the sections in reading order.

    Attributes:
        title: the document's title (``mdsearch report: <run>``; "": none, as on the terminal).
        sections: the sections, first to last.
        notice: shown boxed under the title before any section ("": none), e.g. that the run
            searched on synthetic images.
    """

    title: str
    sections: tuple[Section, ...]
    notice: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "sections", tuple(self.sections))

    def figures(self) -> Iterator[Figure]:
        """Every figure of the document, in reading order."""
        for section in self.sections:
            for block in section.blocks:
                if isinstance(block, Figure):
                    yield block
