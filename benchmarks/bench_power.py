"""Does a search find effects that exist, and does it claim effects that do not? Replayed
searches on noise fitted to the real ground-truth tables, with effects of known size planted.

    python benchmarks/bench_power.py --tables phantom,kermany --budgets 32,100,200 \\
        --samplers tpe,random --confirm 0,0.3 --effects null,0.005,0.01,0.02,0.04,inter:0.02 \\
        --reps 40 --jobs 2

No training. Each replayed search runs the real parts of ``mdsearch run`` (as
``replay_search.py`` does): the Optuna sampler, the references first, a space no larger than the
budget covered before any repeat, the repeat rule with common random numbers (repeat k of every
architecture trains with seed k), the confirmation policy (``next_to_confirm`` through
``enqueue_trial``) and the verdict (``run_verdict``: the front on raw means, held-out
simultaneous claims against the baseline, the stage table with Bonferroni intervals). A
"training" draws its AUC from :class:`~mdsearch.results.noise_model.NoiseModel` fitted to a
ground-truth table's proxy runs (per-architecture noise levels, a seed effect shared across
architectures, the AUC ceiling), around a planted truth:

- ``null``: every architecture has the table's mean AUC;
- ``E`` (e.g. ``0.01``): MD-Conv (3,5) 1:1 in stage ``--stage`` adds E to every architecture
  carrying it (an additive stage effect);
- ``inter:E``: E only when stages 0 and 2 both carry MD-Conv (an interaction, no main effect
  by design of a single stage).

Per cell (table, sampler, budget, confirm, effect) over ``--reps`` searches it prints:

- ``stage power``: share of searches whose stage table claims the planted choice (interval
  above 0); for ``inter``, a claim on stage 0 or 2;
- ``stage false``: share of searches whose table claims any choice without a planted effect
  (the family-wise error), beside ``old`` (null cells only): per-comparison 95% intervals, no
  seed effects (the rule before this verdict);
- ``knee better``: share of searches whose verdict says the knee beats the baseline, among
  those whose knee truly does (``power``), and ``knee false``: claims about the knee (or any
  front member) whose sign is wrong or whose true difference is 0, beside ``old`` (per-comparison,
  all seeds, unpaired: the rule before);
- ``curse``: the knee's reported lead over the baseline (raw means, all seeds) minus its true
  lead, x1000; ``held-out``: the same for the verdict's held-out estimate;
- ``bound``: median of the equivalence bound the verdict states for the knee when it finds no
  difference ("effects beyond +-E excluded"), x1000;
- ``seeds``: median seeds of the knee / the baseline at the end.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"
TABLES = {
    "phantom": RESULTS / "ground_truth-paper-phantom-64px.csv",
    "kermany": RESULTS / "ground_truth-paper-kermany-64px.csv",
}
#: The space searched: the default space's stages visible at 64 px (maps larger than 5x5).
VISIBLE_64 = {
    "backbone": "mobilenetv2_100",
    "stages": {k: ["base", "k3.5s1:3", "k3.5s1:1", "k3.5s3:1"] for k in (0, 1, 2)},
}
PLANTED_TOKEN = "k3.5s1:1"


def make_space(name: str):
    from mdsearch.space import SearchSpace, load_space

    if name == "visible64":
        return SearchSpace.from_dict(VISIBLE_64, "visible64")
    return load_space(name)


_FLOPS: dict[str, float] = {}


def stage_additive_flops(spec) -> float:
    """FLOPs (M multiply-adds at 448 px) as the baseline's plus each stage's own increment:
    exact (a stage's convolutions are its own), and 1 + stages x choices fvcore counts per space
    instead of one per architecture."""
    from mdsearch.mdconv import cost
    from mdsearch.space import ArchSpec

    base = ArchSpec.default(spec.backbone, spec.num_classes)

    def counted(s) -> float:
        if s.canonical not in _FLOPS:
            _FLOPS[s.canonical] = cost(s, 448).flops_m
        return _FLOPS[s.canonical]

    total = counted(base)
    for k, stage in enumerate(spec.stages):
        if stage != base.stages[k]:
            total += counted(base.with_stage(k, stage.kernels, stage.split)) - counted(base)
    return total


def hidden_stages(space, resolution: int) -> dict[int, str]:
    """Stage -> warning for the searched stages the proxy cannot see at ``resolution``."""
    import re

    from mdsearch.search import resolution_warnings

    found = resolution_warnings(space, resolution)
    return {int(re.match(r"stage(\d+)", w).group(1)): w for w in found}


def planted_truth(spec, centre: float, effect: str, stage: int) -> float:
    """The true mean AUC of ``spec`` under the planted effect."""
    if effect == "null":
        return centre
    md = {k for k, s in enumerate(spec.stages) if len(s.kernels) > 1}
    if effect.startswith("inter:"):
        return centre + (float(effect.split(":")[1]) if {0, 2} <= md else 0.0)
    return centre + (float(effect) if spec.stages[stage].token == PLANTED_TOKEN else 0.0)


def replay(cell: dict, rep: int) -> dict:
    """One replayed search of ``cell``; its scores against the planted truth."""
    import optuna

    from mdsearch.results.confirmation import next_to_confirm
    from mdsearch.results.noise_model import NoiseModel
    from mdsearch.results.verdict import run_verdict
    from mdsearch.search.study import covering_plan, make_sampler
    from mdsearch.space import ArchSpec

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore")
    rng = np.random.default_rng([rep, zlib.crc32(cell["key"].encode())])
    model = NoiseModel.fit(TABLES[cell["table"]])
    space = make_space(cell["space"])
    classes = 5
    specs = list(space.enumerate(classes)) if space.size <= 4096 else None
    index = {s.canonical: i for i, s in enumerate(specs)}
    sim = model.simulator(len(specs), rng)
    truth = {
        s.canonical: planted_truth(s, model.centre, cell["effect"], cell["stage"]) for s in specs
    }
    flops = {s.canonical: stage_additive_flops(s) for s in specs}
    baseline = ArchSpec.default(space.backbone, classes).canonical
    refs = [r.canonical for r in space.reference_points(classes)]
    paper = refs[1] if len(refs) > 1 else ""
    budget, confirm = cell["budget"], cell["confirm"]
    explore = budget - round(budget * confirm)
    plan = list(refs)
    if space.size <= budget:  # as mdsearch run: a small space is covered before any repeat,
        covering = covering_plan(space, classes, rep).archs  # and before confirmation
        plan += [a for a in covering if a not in refs]
        explore = max(explore, len(plan))
    sampler = make_sampler(cell["sampler"], rep, space, budget)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    rows: list[dict] = []
    proposed: dict[str, int] = {}
    for t in range(budget):
        arch, phase = None, "explore"
        if t >= explore:
            arch = next_to_confirm(pd.DataFrame(rows), proposed, baseline=baseline)
            phase = "confirm" if arch is not None else "explore"
        elif plan:
            arch = plan.pop(0)
        if arch is not None:
            study.enqueue_trial(space.encode(ArchSpec.parse(arch)))
        trial = study.ask(space.distributions())
        arch = space.decode(trial.params, classes).canonical
        repeat = proposed.get(arch, 0)
        auc = sim.run(truth[arch], index[arch], repeat)
        study.tell(trial, [auc, flops[arch]])
        proposed[arch] = repeat + 1
        rows.append({"arch": arch, "seed": repeat, "auc": auc, "flops_m": flops[arch],
                     "phase": phase, "status": "COMPLETE", "fidelity": 2,
                     "target_fidelity": 2})  # fmt: skip
    table = pd.DataFrame(rows)
    unidentifiable = hidden_stages(space, 64)
    verdict = run_verdict(table, baseline=baseline, paper=paper, unidentifiable=unidentifiable)
    return score(verdict, table, truth, baseline, cell)


def _old_rules(table: pd.DataFrame, verdict, baseline: str, truth: dict) -> tuple[bool, bool]:
    """The rules before this verdict: stage effects at 95% each without seed effects; front
    members vs the baseline with per-comparison intervals over all seeds, unpaired."""
    from mdsearch.results.stage_effects import fit_stage_effects

    stage_false = np.nan  # read only in the null cells: elsewhere skip its MixedLM fit
    try:
        if table.attrs["effect"] == "null":
            stage_false = False
            before = table.drop(columns=["seed", "phase"])  # every row, no seed effects
            old = fit_stage_effects(before, level=0.95)
            z = 1.959964  # one family of 1: per-comparison intervals
            for e in old.effects:
                lo, hi = e.estimate - z * e.se, e.estimate + z * e.se
                if (lo > 0 or hi < 0) and not _planted_stage(e, table.attrs):
                    stage_false = True
    except ValueError:
        pass
    g = table.groupby("arch")["auc"]
    resid = table["auc"] - g.transform("mean")
    dof = len(table) - table["arch"].nunique()
    sd = float(np.sqrt((resid**2).sum() / dof)) if dof > 0 else float("nan")
    arch_false = False
    if np.isfinite(sd):
        means, n = g.mean(), g.size()
        for arch in verdict.front:
            if arch == baseline or baseline not in means:
                continue
            d = means[arch] - means[baseline]
            se = sd * np.sqrt(1 / n[arch] + 1 / n[baseline])
            true = truth[arch] - truth[baseline]
            if abs(d) > 1.96 * se and (abs(true) < 1e-12 or np.sign(d) != np.sign(true)):
                arch_false = True
    return stage_false, arch_false


def _planted_stage(effect, attrs: dict) -> bool:
    kind, stage = attrs["effect"], attrs["stage"]
    if kind == "null":
        return False
    if kind.startswith("inter:"):
        return effect.stage in (0, 2)
    return effect.stage == stage and effect.token == PLANTED_TOKEN


def score(verdict, table: pd.DataFrame, truth: dict, baseline: str, cell: dict) -> dict:
    """A replay's outcome against the planted truth."""
    table.attrs.update(effect=cell["effect"], stage=cell["stage"])
    effects = verdict.stages.effects if verdict.stages else ()
    claimed = [e for e in effects if e.excludes_zero]
    stage_power = any(_planted_stage(e, table.attrs) and e.low > 0 for e in claimed)
    stage_false = any(not _planted_stage(e, table.attrs) for e in claimed)
    arch_false = False
    for c in verdict.archs.claims:
        true = truth[c.arch] - truth[baseline]
        if c.decided and (abs(true) < 1e-12 or np.sign(c.estimate) != np.sign(true)):
            arch_false = True
    knee = verdict.knee
    claim = verdict.claim(knee) if knee else None
    means = table.groupby("arch")["auc"].mean()
    seeds = table.groupby("arch").size()
    knee_true = truth[knee] - truth[baseline] if knee else float("nan")
    old_stage, old_arch = _old_rules(table, verdict, baseline, truth)
    return {
        "stage_power": stage_power,
        "stage_false": stage_false,
        "stage_false_old": old_stage,
        "knee_truly_better": knee_true > 1e-12,
        "knee_better": bool(claim is not None and claim.outcome == "better"),
        "arch_false": arch_false,
        "arch_false_old": old_arch,
        "curse": (means[knee] - means.get(baseline, np.nan)) - knee_true if knee else np.nan,
        "curse_heldout": (claim.estimate - knee_true)
        if claim is not None and claim.seeds > 1
        else np.nan,
        "bound": claim.excluded
        if claim is not None and claim.outcome == "no difference"
        else np.nan,
        "knee_seeds": int(seeds.get(knee, 0)) if knee else 0,
        "base_seeds": int(seeds.get(baseline, 0)),
    }


def _replay_task(task: tuple[dict, int]) -> dict:
    return replay(*task)


def summarise(cell: dict, outcomes: list[dict]) -> dict:
    """One cell's row: the shares and medians over its replayed searches."""
    res = pd.DataFrame(outcomes)
    truly = res[res["knee_truly_better"]]
    return {
        **{k: cell[k] for k in ("table", "sampler", "budget", "confirm", "effect")},
        "reps": len(res),
        "stage_power": res["stage_power"].mean(),
        "stage_false": res["stage_false"].mean(),
        "stage_false_old": res["stage_false_old"].mean(),
        "knee_power": truly["knee_better"].mean() if len(truly) else np.nan,
        "knee_truly_better": res["knee_truly_better"].mean(),
        "arch_false": res["arch_false"].mean(),
        "arch_false_old": res["arch_false_old"].mean(),
        "curse": 1000 * res["curse"].mean(),
        "curse_heldout": 1000 * res["curse_heldout"].mean(),
        "bound": 1000 * res["bound"].median(),
        "knee_seeds": res["knee_seeds"].median(),
        "base_seeds": res["base_seeds"].median(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tables", default="phantom,kermany")
    p.add_argument("--space", default="visible64", help="visible64 (default run's) or a space")
    p.add_argument("--samplers", default="tpe,random")
    p.add_argument("--budgets", default="32,100,200")
    p.add_argument("--confirm", default="0,0.3")
    p.add_argument("--effects", default="null,0.005,0.01,0.02,0.04,inter:0.02")
    p.add_argument("--stage", type=int, default=1, help="stage of the planted effect")
    p.add_argument("--reps", type=int, default=40)
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--out", type=Path, default=None, help="CSV of the cells")
    args = p.parse_args(argv)

    from mdsearch.results.noise_model import NoiseModel

    for t in args.tables.split(","):
        print(f"# noise: {NoiseModel.fit(TABLES[t]).describe()}")
    print(f"# space {args.space}; planted: {PLANTED_TOKEN} in stage {args.stage} (E), or E when "
          f"stages 0 and 2 both carry MD-Conv (inter:E); {args.reps} searches per cell")  # fmt: skip
    cells = [
        {"table": t, "space": args.space, "sampler": s, "budget": int(b), "confirm": float(c),
         "effect": e, "stage": args.stage, "reps": args.reps, "key": f"{t}{s}{b}{c}{e}"}
        for t in args.tables.split(",") for e in args.effects.split(",")
        for b in args.budgets.split(",") for s in args.samplers.split(",")
        for c in args.confirm.split(",")
    ]  # fmt: skip
    start = time.monotonic()
    cols = ["table", "effect", "budget", "sampler", "confirm", "stage_power", "stage_false",
            "stage_false_old", "knee_power", "arch_false", "arch_false_old", "curse",
            "curse_heldout", "bound", "knee_seeds", "base_seeds"]  # fmt: skip
    print(" ".join(f"{c:>9}" for c in cols), flush=True)
    out = []
    tasks = [(cell, rep) for cell in cells for rep in range(cell["reps"])]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:  # replays in parallel, cells in order
        outcomes = pool.map(_replay_task, tasks)
        for cell in cells:
            row = summarise(cell, [next(outcomes) for _ in range(cell["reps"])])
            out.append(row)
            print(" ".join(f"{_fmt(row[c]):>9}" for c in cols), flush=True)
            if args.out:
                pd.DataFrame(out).to_csv(args.out, index=False)
    print(f"# {time.monotonic() - start:.0f} s", file=sys.stderr)
    return 0


def _fmt(v) -> str:
    if isinstance(v, float):
        return "-" if np.isnan(v) else f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


if __name__ == "__main__":
    sys.exit(main())
