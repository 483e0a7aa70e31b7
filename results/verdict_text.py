"""The verdict in plain words: what a run found, with numbers, for the report's opening section,
the end of ``mdsearch run`` and ``mdsearch pareto``.

Every sentence carries its interval; "no difference" is always said with the size of effect it
excludes and with the seeds that would find a given effect.
"""

from __future__ import annotations

from mdsearch.space import ArchSpec, ArchSpecError

from .verdict import Claim, Verdict, seeds_needed

__all__ = ["DETECT_EFFECT", "verdict_headline", "verdict_lines"]

#: The effect size the "seeds needed" sentence is about (AUC).
DETECT_EFFECT = 0.01


def _arch_name(verdict: Verdict, arch: str, unit: str) -> str:
    """``3f2a9c01de (MD-Conv in stages 1, 2; 1210 M FLOPs)``."""
    try:
        spec = ArchSpec.parse(arch)
    except ArchSpecError:
        return arch
    stages = spec.mdconv_stages
    where = (
        "no MD-Conv"
        if not stages
        else f"MD-Conv in stage{'s' * (len(stages) > 1)} {', '.join(map(str, stages))}"
    )
    cost = verdict.costs.get(arch)
    cost_text = f"; {cost:.0f} {unit}" if cost is not None else ""
    return f"{spec.arch_id} ({where}{cost_text})"


def _claim_text(claim: Claim, level: float) -> str:
    if claim.outcome == "better":
        return f"beats the baseline by {claim.interval_text()} AUC"
    if claim.outcome == "worse":
        return f"is below the baseline by {claim.interval_text()} AUC"
    if claim.outcome == "no difference":
        return (
            f"no difference from the baseline found: {claim.interval_text()}; effects beyond "
            f"+-{claim.excluded:.3f} AUC are excluded at {level:.0%}"
        )
    if claim.outcome == "unknown":
        return f"{claim.estimate:+.3f} AUC on one paired seed: not judged ({claim.reason})"
    return f"not judged: {claim.reason}"


def _seeds_text(claim: Claim, verdict: Verdict) -> str:
    kind = (
        "held-out seed" if verdict.archs.heldout and claim.subject != "paper's network" else "seed"
    )
    return f"{claim.seeds} {kind}{'s' * (claim.seeds != 1)} paired with the baseline"


def _stage_bound(verdict: Verdict) -> float | None:
    """The largest interval end among the identifiable stage choices not claimed."""
    if verdict.stages is None:
        return None
    ends = [
        max(abs(e.low), abs(e.high))
        for e in verdict.stages.effects
        if e.identifiable and not e.excludes_zero
    ]
    return max(ends) if ends else None


def verdict_headline(verdict: Verdict, *, unit: str = "M FLOPs") -> str:
    """One sentence: what the run found (or the size of what it rules out)."""
    level = verdict.archs.level
    wins = [c for c in verdict.archs.claims if c.outcome == "better"]
    stage_wins = [e for e in verdict.stage_claims() if e.low > 0]
    found = []
    for c in wins[:2]:
        found.append(
            f"the {c.subject} {_arch_name(verdict, c.arch, unit)} beats the baseline by "
            f"{c.interval_text()} AUC"
        )
    for e in stage_wins[:2]:
        found.append(
            f"{e.label} in stage {e.stage} raises AUC by {e.estimate:+.3f} "
            f"[{e.low:+.3f}, {e.high:+.3f}] wherever it is placed"
        )
    if found:
        return "Found: " + "; ".join(found) + "."
    knee = verdict.claim(verdict.knee) if verdict.knee else None
    parts = ["No placement effect found"]
    if knee is not None and knee.outcome == "no difference":
        parts.append(
            f"the knee's difference to the baseline is {knee.interval_text()} AUC, so effects "
            f"beyond +-{knee.excluded:.3f} are excluded at {level:.0%}"
        )
    bound = _stage_bound(verdict)
    if bound is not None:
        parts.append(f"no stage choice moves AUC by more than +-{bound:.3f}")
    return ": ".join(parts[:1]) + (": " + "; ".join(parts[1:]) if len(parts) > 1 else "") + "."


def verdict_lines(
    verdict: Verdict, *, unit: str = "M FLOPs", resolution: int | None = None
) -> list[str]:
    """The verdict as sentences, headline first (each one line of text).

    Args:
        verdict: :func:`~mdsearch.results.verdict.run_verdict`'s result.
        unit: how costs read (``M FLOPs at 448 px``).
        resolution: the proxy resolution, for the sentence on stages it cannot see.
    """
    level = verdict.archs.level
    lines = [verdict_headline(verdict, unit=unit)]
    if not verdict.baseline:
        lines.append("The baseline (no MD-Conv) was not evaluated: nothing is compared with it.")
        return lines
    for claim in verdict.archs.claims:
        name = _arch_name(verdict, claim.arch, unit)
        text = _claim_text(claim, level)
        seeds = f" ({_seeds_text(claim, verdict)})" if claim.seeds else ""
        lines.append(f"{claim.subject.capitalize()} {name}: {text}{seeds}.")
    if verdict.stages is not None:
        model = verdict.stages
        claimed = verdict.stage_claims()
        for e in claimed:
            verb = "raises" if e.low > 0 else "lowers"
            lines.append(
                f"{e.label} in stage {e.stage} {verb} AUC by {e.estimate:+.3f} "
                f"[{e.low:+.3f}, {e.high:+.3f}] (additive model over {verdict.trials} trials; "
                f"{e.trials} carry it)."
            )
        bound = _stage_bound(verdict)
        if bound is not None:
            other = "no other stage choice" if claimed else "no stage choice"
            lines.append(
                f"Stage choices: {other} differs from the backbone's own kernel; effects beyond "
                f"+-{bound:.3f} AUC are excluded at {level:.0%} (simultaneous over "
                f"{model.family} choices)."
            )
        hidden = sorted({e.stage for e in model.effects if not e.identifiable})
        if hidden:
            at = f" at {resolution} px" if resolution else ""
            lines.append(
                f"Not identifiable{at}: stage{'s' * (len(hidden) > 1)} "
                f"{', '.join(map(str, hidden))} (feature maps no larger than the largest kernel: "
                "the proxy cannot tell the choices apart there), so no interval is given."
            )
    n = seeds_needed(DETECT_EFFECT, verdict.archs.paired_sd, level=level)
    if n is not None:
        lines.append(
            f"Power: a difference of {DETECT_EFFECT:+.2f} AUC between two architectures needs "
            f"about {n} seeds per side to be found (80% power; SD of one paired seed difference "
            f"{verdict.archs.paired_sd:.4f})."
        )
    lines.append(f"How: {verdict.archs.method()}.")
    return lines
