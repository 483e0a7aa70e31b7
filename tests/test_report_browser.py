"""The report reads well in a real browser: headless Chromium at 1400 px shows no horizontal
overflow, neither of the page nor inside any table (skipped where Chromium is not installed)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from run_fixtures import DEFAULT_TRIALS, make_run_folder

from mdsearch.results import write_report
from mdsearch.search.datasets import FINDINGS

WIDTH = 1400

#: Runs after the page has loaded: measures the page and every table's box, and writes the
#: result into the DOM, where ``--dump-dom`` returns it.
_MEASURE = """<script>
window.addEventListener("load", () => {
  const root = document.documentElement;
  const wide = [...document.querySelectorAll("div.table")]
    .filter((box) => box.scrollWidth > box.clientWidth + 1)
    .map((box) => box.querySelector("tr").innerText.replace(/\\s+/g, " ").slice(0, 80));
  const pre = document.createElement("pre");
  pre.id = "overflow";
  pre.textContent = JSON.stringify(
    {client: root.clientWidth, scroll: root.scrollWidth, wide_tables: wide});
  document.body.appendChild(pre);
});
</script>"""


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("MDSEARCH_REQUIRE_CHROMIUM"):  # CI installs it: a skip would hide a gap
        pytest.fail("MDSEARCH_REQUIRE_CHROMIUM is set but no Chromium is on the PATH")
    pytest.skip("no Chromium on this machine (apt-get install -y chromium) to render the report")


def _wide_run(root: Path) -> Path:
    """A run that makes the report as wide as real ones get: 14 ChestX-ray14 labels, three
    objectives (so the front table has a latency column) and the longest arch strings."""
    run = make_run_folder(root, DEFAULT_TRIALS, labels=FINDINGS, synthetic=False)
    trials = pd.read_csv(run / "trials.csv")
    trials["latency_ms"] = 3.0 + (trials["flops_m"] - 1200.0) / 50.0
    trials.to_csv(run / "trials.csv", index=False)
    config = json.loads((run / "config.json").read_text())
    config["objectives"] = ["auc", "flops", "latency"]
    config["latency"] = {"input_size": 224, "batch_size": 1, "threads": 1, "device": "cpu"}
    (run / "config.json").write_text(json.dumps(config))
    return run


def _render(chromium: str, page: Path, *args: str) -> subprocess.CompletedProcess:
    # No background networking: the machine's network is closed, and a fresh profile per page.
    quiet = [
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        f"--user-data-dir={page.parent / 'chromium'}",
    ]
    return subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *quiet,
         f"--window-size={WIDTH},1000", "--virtual-time-budget=5000", *args, page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _measure(chromium: str, html: Path, tmp_path: Path) -> dict:
    """The page's and its tables' widths, as Chromium lays ``html`` out at WIDTH px."""
    page = tmp_path / "measured.html"
    page.write_text(html.read_text().replace("</body>", _MEASURE + "</body>"))
    dom = _render(chromium, page, "--dump-dom")
    found = re.search(r'<pre id="overflow">(.*?)</pre>', dom.stdout)
    assert found, f"Chromium returned no measurement: {dom.stderr[-500:]}"
    return json.loads(found.group(1).replace("&quot;", '"'))


def test_the_report_fits_a_1400_px_window(tmp_path):
    chromium = _chromium()
    files = write_report(_wide_run(tmp_path), n_resamples=100)
    measured = _measure(chromium, files["html"], tmp_path)
    assert measured["scroll"] <= measured["client"], measured  # the page does not scroll sideways
    assert measured["wide_tables"] == [], measured  # nor does any table inside its box
    shot = tmp_path / "report.png"
    _render(chromium, files["html"], f"--screenshot={shot}")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
