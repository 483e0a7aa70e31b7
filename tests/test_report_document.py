"""The report as a document model: every section is built once as data and rendered to Markdown
and HTML alike (the same tables and text in both), rendering reads no file, and a section added
at the top opens every rendering. Hand-made run folders; no training."""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from run_fixtures import make_run_folder
from test_supernet_report import add_supernet

from mdsearch.results import (
    Bullets,
    Document,
    Figure,
    Paragraph,
    Section,
    Table,
    build_pareto_summary,
    build_report,
    explain_section,
    format_pareto_table,
    gather_report,
    render_html,
    render_markdown,
    render_text,
    summarise_proxy_check,
    with_explain_section,
    write_report,
)
from mdsearch.search.proxy_check import PROXY_CHECK_SCHEMA


class _Page(HTMLParser):
    """The tables (rows of cell texts) and the texts of paragraphs and list items of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.texts: list[str] = []
        self.alts: list[str] = []
        self._cell: list[str] | None = None
        self._text: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag in ("p", "li"):
            self._text = []
        elif tag == "img":
            self.alts.append(dict(attrs)["alt"])

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None
        elif tag in ("p", "li"):
            self.texts.append("".join(self._text))
            self._text = None

    def handle_data(self, data):
        for part in (self._cell, self._text):
            if part is not None:
                part.append(data)


def _markdown_tables(text: str) -> list[list[list[str]]]:
    """The Markdown tables of ``text`` as rows of cells (the rule row left out)."""
    tables, current = [], None
    for line in text.splitlines():
        if line.startswith("|"):
            if current is None:
                current = []
                tables.append(current)
            if set(line) <= set("|-"):
                continue
            cells = line.strip().removeprefix("| ").removesuffix(" |").split(" | ")
            current.append([c.replace("\\|", "|") for c in cells])
        else:
            current = None
    return tables


def _cell(value) -> str:
    """A table value as both renderers show it (floats with 3 decimals)."""
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _proxy_check() -> dict:
    """A proxy-check result with a supernet block, as ``mdsearch proxy-check --supernet`` writes."""
    rng = np.random.default_rng(0)
    long = np.linspace(0.6, 0.9, 5)[:, None] + rng.normal(0, 0.001, (5, 2))
    scores = np.array([0.80, 0.74, 0.70, 0.66, 0.61])
    archs = [
        {"label": f"sample {i}", "id": f"{i:04d}", "mdconv_stages": [i], "flops_m": 1200.0 + i}
        for i in range(5)
    ]
    supernet = {"epochs": 8, "proxy_equivalents": 16.0, "train_seconds": 412.3, "auc": list(scores)}
    summary = summarise_proxy_check({2: long - 0.02, 8: long}, 8, n_resamples=50, supernet=scores)
    return {"schema": PROXY_CHECK_SCHEMA, "archs": archs, "supernet": supernet, **summary}


@pytest.fixture(scope="module")
def supernet_run(tmp_path_factory):
    """A supernet run with a failed trial, a proxy-check and every section of the report."""
    run = add_supernet(make_run_folder(tmp_path_factory.mktemp("doc")))
    (run / "proxy_check.json").write_text(json.dumps(_proxy_check()))
    return run


@pytest.fixture(scope="module")
def gathered(supernet_run, tmp_path_factory):
    """A copy of the supernet run and what its report gathered from it (50 resamples)."""
    run = tmp_path_factory.mktemp("copy") / "run"
    shutil.copytree(supernet_run, run)
    return run, gather_report(run, n_resamples=50)


def test_every_section_shows_the_same_tables_and_text_in_markdown_and_html(gathered):
    document = build_report(gathered[1])
    titles = [s.title for s in document.sections]
    assert titles[:2] == ["Trials", "Pareto front"] and titles[-1] == "Settings and data"
    assert {"Supernet", "Proxy fidelity (mdsearch proxy-check)"} <= set(titles)
    for section in document.sections:
        alone = Document("", (section,))
        markdown, page = render_markdown(alone), _Page()
        page.feed(render_html(alone))
        tables = [b.data for b in section.blocks if isinstance(b, Table)]
        assert len(tables) == len(page.tables) == len(_markdown_tables(markdown)), section.title
        for data, shown, written in zip(tables, page.tables, _markdown_tables(markdown)):
            want = [[str(c) for c in data.columns]]
            want += [[_cell(v) for v in row] for row in data.itertuples(index=False)]
            # HTML keeps an interval's spaces non-breaking; the cells say the same.
            assert [[c.replace("\u00a0", " ") for c in row] for row in shown] == want
            assert written == [[c.replace("\n", " ") for c in row] for row in want]
        for block in section.blocks:
            texts = {
                Paragraph: lambda b: [b.text],
                Bullets: lambda b: list(b.items),
                Table: lambda b: [b.caption] if b.caption else [],
                Figure: lambda b: [b.caption] if b.caption else [],
            }[type(block)](block)
            for text in texts:
                assert text in page.texts, (section.title, text)
                assert text in markdown, (section.title, text)
            if isinstance(block, Figure):
                assert block.alt in page.alts
                assert f"![{block.alt}]({block.file})" in markdown


def test_rendering_reads_no_file(gathered, tmp_path):
    run, data = gathered
    written = write_report(run, tmp_path / "written", n_resamples=50)
    shutil.rmtree(run)
    document = build_report(data)
    assert render_markdown(document) == written["markdown"].read_text()
    assert render_html(document) == written["html"].read_text()
    # Every plot the document shows is the file written beside report.md.
    for figure in document.figures():
        assert figure.png == (tmp_path / "written" / figure.file).read_bytes()


def test_a_report_without_a_front_is_built_from_the_same_sections(tmp_path):
    run = add_supernet(make_run_folder(tmp_path), standalone=False)
    (run / "proxy_check.json").write_text(json.dumps(_proxy_check()))
    data = gather_report(run, n_resamples=0)
    assert data.analysis is None and "no finished trial yet" in data.no_front
    document = build_report(data)
    assert [s.title for s in document.sections] == [
        "Trials",
        "Supernet",
        "Proxy fidelity (mdsearch proxy-check)",
        "Settings and data",
    ]
    assert document.sections[0].blocks == (Paragraph(data.no_front, "warning"),)
    page = render_html(document)
    assert f'<p class="warning">{data.no_front}' in page.replace("&#x27;", "'")


def test_a_section_inserted_first_opens_the_report_and_the_terminal_text(supernet_run, gathered):
    verdict = Section("Verdict", (Paragraph("No architecture beats the baseline."),))
    data = gathered[1]
    report = build_report(data)
    report = Document(report.title, (verdict, *report.sections), report.notice)
    markdown, page = render_markdown(report), render_html(report)
    assert markdown.index("## Verdict") < markdown.index("## Trials")
    assert markdown.index("Synthetic data") < markdown.index("## Verdict")
    assert page.index('<section id="verdict">') < page.index("<h2>Trials</h2>")
    summary = build_pareto_summary(data.analysis)
    assert render_text(summary) == format_pareto_table(supernet_run, n_resamples=50)
    text = render_text(Document("", (verdict, *summary.sections), summary.notice))
    lines = text.splitlines()
    assert lines[0].startswith("!! Synthetic data") and lines[1:4] == [
        "Verdict",
        "-------",
        "No architecture beats the baseline.",
    ]
    assert lines[5].startswith("run demo: 9 trials")


def test_text_is_escaped_for_html_and_kept_whole_in_markdown():
    table = pd.DataFrame({"a|b": ["x|y", "<b>"], "n": [1, 2.5]})
    section = Section(
        "Tricky <names>",
        (Paragraph("1 < 2 & 3 > 2", "note"), Table(table, "cap|tion"), Bullets(["<i>"])),
    )
    page = render_html(Document("t", (section,)))
    assert "<b>" not in page and "&lt;b&gt;" in page
    assert '<p class="note">1 &lt; 2 &amp; 3 &gt; 2</p>' in page
    assert 'id="tricky-names"' in page
    markdown = render_markdown(Document("t", (section,)))
    assert "> **Note:** 1 < 2 & 3 > 2" in markdown
    assert "| a\\|b | n |" in markdown and "| x\\|y | 1.000 |" in markdown
    assert "| <b> | 2.500 |" in markdown and "cap|tion" in markdown
    with pytest.raises(ValueError, match="paragraph kind"):
        Paragraph("x", "shout")


def test_the_grad_cam_section_is_built_from_explain_json_data(tmp_path):
    saved = {
        "feature_side": 2,
        "split": "test",
        "layer": "conv_head",
        "cases": [{}, {}, {}],
        "scores": [
            {"cases": 5, "hit_rate": 0.6, "hit_low": 0.2, "hit_high": 0.9, "chance": 0.25,
             "fixed_point": 0.4, "mean_iou": 0.3}
        ],
    }  # fmt: skip
    section = explain_section(saved)
    assert section.title == "Grad-CAM" and len(section.blocks) == 1
    text = section.blocks[0].text
    assert "3 map(s) of the test split at `conv_head` (2x2 cells)" in text
    assert "hit rate 0.60 [0.20, 0.90] vs chance 0.250 (a fixed point: 0.40)" in text
    # eval.md gets the same section, rendered by the report's Markdown renderer.
    (tmp_path / "explain.json").write_text(json.dumps(saved))
    report = with_explain_section("# Evaluation of x\n", tmp_path)
    assert report.endswith(render_markdown(Document("", (section,))))
    assert report.startswith("# Evaluation of x\n\n<!-- mdsearch explain -->\n## Grad-CAM\n")
