"""Reports of a run: ``report.html`` (self-contained), ``report.md``, plots and ``pareto.csv``.

:func:`write_report` is what ``mdsearch report RUN`` and the end of ``mdsearch run`` call;
:func:`format_pareto_table` is ``mdsearch pareto RUN``. Both go the same way, one step after the
other:

1. load and analyse (:func:`gather_report`): read the run folder, analyse the front
   (:func:`~mdsearch.results.analysis.analyse_run`), the supernet
   (:func:`~mdsearch.results.supernet_analysis.analyse_supernet`) and read the proxy-check, draw
   the plots (:func:`~mdsearch.results.figures.report_figures`) -- the only step that reads files;
2. build the document (:func:`~mdsearch.results.report_sections.build_report`): the sections as
   data;
3. render it (:mod:`~mdsearch.results.report_markup`: Markdown, HTML with the plots embedded as
   base64 PNG so the page opens offline, or text);
4. write the files, each atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mdsearch.space.files import atomic_write_bytes, atomic_write_text

from .analysis import analyse_run
from .fidelity import load_proxy_check
from .figures import report_figures, supernet_figure
from .pareto import resolve_objectives
from .report_markup import render_html, render_markdown, render_text
from .report_sections import ReportData, build_pareto_summary, build_report
from .report_tables import pareto_csv_table
from .supernet_analysis import analyse_supernet, no_front_reason
from .trials import load_run

__all__ = ["format_pareto_table", "gather_report", "write_report"]

#: The keyword arguments of :func:`analyse_run` the supernet's statistics take too.
_SUPERNET_KEYS = ("objectives", "level", "n_resamples", "seed")


def gather_report(run_dir: str | Path, **kwargs: Any) -> ReportData:
    """Everything a run's report shows, read and computed from the run folder (the one step
    of a report that reads files).

    Args:
        run_dir: the run folder.
        **kwargs: passed to :func:`~mdsearch.results.analysis.analyse_run` (``objectives=``,
            ``reference=``, ``level=``, ``n_resamples=``, ``seed=``).

    Raises:
        ResultsError: see :func:`write_report`.

    Example:
        >>> data = gather_report("runs/demo")  # doctest: +SKIP
        >>> render_markdown(build_report(data))  # doctest: +SKIP
    """
    run = load_run(run_dir)
    supernet = analyse_supernet(run, **{k: v for k, v in kwargs.items() if k in _SUPERNET_KEYS})
    figures = {"supernet_png": supernet_figure(supernet)} if supernet is not None else {}
    proxy_check = load_proxy_check(run.path)
    if supernet is not None:
        wanted = kwargs.get("objectives") or run.config.get("objectives") or ("auc", "flops")
        reason = no_front_reason(run, [o.column for o in resolve_objectives(wanted)])
        if reason is not None:
            return ReportData(run, None, reason, supernet, proxy_check, figures)
    analysis = analyse_run(run, **kwargs)
    figures = report_figures(analysis) | figures
    return ReportData(run, analysis, "", supernet, proxy_check, figures)


def write_report(run_dir: str | Path, out_dir: str | Path | None = None, **kwargs: Any):
    """Write the run's report files.

    Args:
        run_dir: the run folder.
        out_dir: where to write (default: the run folder itself).
        **kwargs: passed to :func:`~mdsearch.results.analysis.analyse_run` (``objectives=``,
            ``reference=``, ``level=``, ``n_resamples=``, ``seed=``).

    Returns:
        ``dict[str, Path]`` with keys ``html`` (report.html, self-contained), ``markdown``
        (report.md), ``pareto_png`` (AUC vs the first cost objective), ``pareto_csv``,
        ``hypervolume_png``, ``stages_png``, ``effects_png`` (stage_effects.png) and
        ``effects_csv`` (stage_effects.csv, when the stage model could be fitted), and for each
        further cost objective ``pareto_<name>_png`` (``pareto_latency_png``:
        pareto_latency.png).

        A supernet run's report adds its Supernet section and ``supernet_png`` (supernet.png:
        supernet score against stand-alone AUC). While such a run has no stand-alone trial
        that finished the proxy, the report says so and shows the supernet alone: then only
        ``html``, ``markdown`` and ``supernet_png``.

    Raises:
        ResultsError: the run folder or trial table is missing or empty, or no trial finished
            the proxy (the message says why; a supernet run gets its report without a front).

    Example:
        >>> paths = write_report("runs/demo")  # doctest: +SKIP
        >>> paths["html"].name  # doctest: +SKIP
        'report.html'
    """
    data = gather_report(run_dir, **kwargs)
    document = build_report(data)
    out = Path(out_dir) if out_dir is not None else data.run.path
    out.mkdir(parents=True, exist_ok=True)
    figures = data.figures
    analysis = data.analysis
    files = {"html": out / "report.html", "markdown": out / "report.md"}
    if analysis is not None:  # listed first, in this order, by `mdsearch report`
        files |= {
            "pareto_png": out / figures["pareto_png"].file,
            "pareto_csv": out / "pareto.csv",
            "hypervolume_png": out / figures["hypervolume_png"].file,
            "stages_png": out / figures["stages_png"].file,
        }
    files |= {key: out / figure.file for key, figure in figures.items() if key not in files}
    for key, figure in figures.items():
        atomic_write_bytes(files[key], figure.png)
    if analysis is not None:
        atomic_write_text(files["pareto_csv"], pareto_csv_table(analysis).to_csv(index=False))
        if analysis.stage_model is not None:
            files["effects_csv"] = out / "stage_effects.csv"
            table = analysis.stage_model.table()
            atomic_write_text(files["effects_csv"], table.to_csv(index=False))
    atomic_write_text(files["markdown"], render_markdown(document))
    atomic_write_text(files["html"], render_html(document))
    return files


def format_pareto_table(run_dir: str | Path, **kwargs: Any) -> str:
    """The Pareto front as a plain-text table for the terminal (``mdsearch pareto RUN``).

    Args:
        run_dir: the run folder.
        **kwargs: passed to :func:`~mdsearch.results.analysis.analyse_run` (``n_resamples=0``
            skips the intervals, ``objectives=``, ``reference=``).

    Raises:
        ResultsError: see :func:`~mdsearch.results.analysis.analyse_run`.

    Example:
        >>> print(format_pareto_table("runs/demo"))  # doctest: +SKIP
    """
    return render_text(build_pareto_summary(analyse_run(run_dir, **kwargs)))
