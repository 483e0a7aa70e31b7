"""Search spaces: which stage choices a search may combine, and their Optuna encoding.

A space fixes a backbone and lists, per stage, the allowed :class:`StageSpec` choices. Stages with
one choice are fixed; the others become one categorical Optuna parameter each (``stage5``), whose
values are stage tokens, so a study is readable in optuna-dashboard and any sampled parameter set
decodes to exactly one :class:`ArchSpec`.

Space files (YAML or JSON), presets included (``space/presets/*.yaml``)::

    backbone: mobilenetv2_100          # optional, default mobilenetv2_100
    every_stage: [base, k3.5s1:1]      # optional: choices for every stage with a depthwise conv
    stages:                            # optional: per-stage choices, override every_stage
      5: [base, k3.5s1:3, k3.5s1:1, k3.5s3:1]

``base`` is the backbone's own kernel in that stage (3x3 for MobileNet-v2). Stages named nowhere
keep ``base``. ``only_visible: true`` (the ``default`` preset has it) searches only the stages the
proxy can see at the run's resolution: a stage whose feature maps there are not larger than its
largest kernel choice is held at ``base`` (at 2x2 every tap of a 5x5 ring in a stride-1 block
falls in the padding: 3x3 and 5x5 are the same function), and the space says which and why
(:meth:`SearchSpace.visible_at`).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .archspec import ArchSpec, StageSpec
from .backbones import get_backbone
from .errors import ArchSpecError, SpaceError

__all__ = ["SearchSpace", "SpaceError", "PRESETS", "load_space"]

PRESETS = ("paper", "default", "every-stage")
_KEYS = {"backbone", "every_stage", "stages", "description", "only_visible"}


@dataclass(frozen=True)
class SearchSpace:
    """Allowed choices per stage of one backbone.

    Args:
        name: preset name or file name, for reports.
        backbone: timm backbone name.
        choices: per stage, the allowed :class:`StageSpec` values (first = the stage's base).
        description: one line for ``mdsearch space``.
        only_visible: search only the stages visible at the proxy's resolution (see the module
            docstring); applied by :func:`load_space` when it is given the resolution.
        held: ``(stage, why)`` for each stage :meth:`visible_at` held at its base.

    Example:
        >>> space = load_space("paper")
        >>> space.size, list(space.distributions())
        (16, ['stage1', 'stage2', 'stage3', 'stage5'])
        >>> space.decode({"stage1": "k3", "stage2": "k3", "stage3": "k3", "stage5": "k3.5s1:1"}).canonical
        'mobilenetv2_100:c14:k3,k3,k3,k3,k3,k3.5s1:1,k3'
    """

    name: str
    backbone: str
    choices: tuple[tuple[StageSpec, ...], ...]
    description: str = ""
    only_visible: bool = False
    held: tuple[tuple[int, str], ...] = ()

    @property
    def searched_stages(self) -> tuple[int, ...]:
        """Stages with more than one choice (the Optuna parameters)."""
        return tuple(i for i, c in enumerate(self.choices) if len(c) > 1)

    @property
    def size(self) -> int:
        """Number of distinct architectures in the space."""
        return math.prod(len(c) for c in self.choices)

    def distributions(self) -> dict[str, Any]:
        """Optuna distributions, one categorical per searched stage, values = stage tokens."""
        from optuna.distributions import CategoricalDistribution

        return {
            f"stage{i}": CategoricalDistribution([s.token for s in self.choices[i]])
            for i in self.searched_stages
        }

    def decode(self, params: Mapping[str, Any], num_classes: int = 14) -> ArchSpec:
        """The ArchSpec a parameter set (``{"stage5": "k3.5s1:1", ...}``) stands for."""
        stages = []
        for i, options in enumerate(self.choices):
            if len(options) == 1:
                stages.append(options[0])
                continue
            token = params.get(f"stage{i}")
            stage = StageSpec.parse(str(token)) if token is not None else None
            if stage not in options:
                allowed = ", ".join(s.token for s in options)
                raise SpaceError(f"stage{i}={token!r} is not in space {self.name} ({allowed})")
            stages.append(stage)
        return ArchSpec(self.backbone, num_classes, tuple(stages))

    def encode(self, spec: ArchSpec) -> dict[str, str]:
        """Parameter set for ``spec`` (inverse of :meth:`decode`); SpaceError when outside."""
        if not self.contains(spec):
            raise SpaceError(f"{spec.canonical} is not in space {self.name}")
        return {f"stage{i}": spec.stages[i].token for i in self.searched_stages}

    def contains(self, spec: ArchSpec) -> bool:
        """Whether ``spec`` (any num_classes) is one of this space's architectures."""
        return spec.backbone == self.backbone and all(
            s in options for s, options in zip(spec.stages, self.choices)
        )

    def __iter__(self) -> Iterator[ArchSpec]:
        return self.enumerate()

    def enumerate(self, num_classes: int = 14) -> Iterator[ArchSpec]:
        """Every architecture of the space (use only for small spaces: see :attr:`size`)."""
        for stages in itertools.product(*self.choices):
            yield ArchSpec(self.backbone, num_classes, tuple(stages))

    def reference_points(self, num_classes: int = 14) -> list[ArchSpec]:
        """The baseline (no MD-Conv) and the paper's (stage5 (3,5) 1:1), those the space holds."""
        refs = [ArchSpec.default(self.backbone, num_classes)]
        try:
            refs.append(ArchSpec.paper(self.backbone, num_classes))
        except ArchSpecError:  # a backbone without a stage5 depthwise conv
            pass
        return [r for r in refs if self.contains(r)]

    def visible_at(self, resolution: int) -> SearchSpace:
        """This space with every searched stage the proxy cannot see at ``resolution`` px held
        at its base choice (its maps there are not larger than its largest kernel choice).

        Raises:
            SpaceError: no searched stage is visible at that resolution.

        Example:
            >>> space = load_space("default").visible_at(64)
            >>> space.searched_stages, [stage for stage, _ in space.held]
            ((0, 1, 2), [3, 4, 5, 6])
        """
        sizes = get_backbone(self.backbone).map_sizes(resolution)
        choices, held = list(self.choices), list(self.held)
        for i in self.searched_stages:
            kmax = max(max(s.kernels) for s in self.choices[i])
            if sizes[i] <= kmax:
                choices[i] = (self.choices[i][0],)
                held.append(
                    (
                        i,
                        f"at {resolution} px its maps are {sizes[i]}x{sizes[i]}, not larger than "
                        f"its {kmax}x{kmax} kernel choice",
                    )  # fmt: skip
                )
        if not any(len(c) > 1 for c in choices):
            raise SpaceError(
                f"space {self.name}: at --resolution {resolution} no searched stage has maps "
                "larger than its kernels; use a larger --resolution"
            )
        return replace(self, choices=tuple(choices), held=tuple(held))

    def describe(self) -> str:
        """Human-readable listing of the choices, as ``mdsearch space`` prints it."""
        lines = [f"space {self.name}: backbone {self.backbone}"]
        if self.description:
            lines.append(self.description)
        layout = get_backbone(self.backbone)
        why = dict(self.held)
        for i, (options, lay) in enumerate(zip(self.choices, layout.stages)):
            kind = "searched" if len(options) > 1 else "held" if i in why else "fixed"
            toks = " | ".join(s.token for s in options)
            note = f"   ({why[i]})" if i in why else ""
            lines.append(f"  stage{i} (stride {lay.stride}, x{lay.repeats}) {kind:8s} {toks}{note}")
        lines.append(
            f"{self.size} distinct architectures ({len(self.searched_stages)} searched stages)"
        )
        return "\n".join(lines)

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], name: str, backbone: str | None = None
    ) -> SearchSpace:
        """Build from the file form (module docstring); ``backbone`` overrides the file's."""
        if not isinstance(data, Mapping):
            raise SpaceError(
                f"{name}: a space file must be a mapping with 'stages' or 'every_stage'"
            )
        unknown = set(data) - _KEYS
        if unknown:
            raise SpaceError(f"{name}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_KEYS)}")
        backbone = backbone or str(data.get("backbone", "mobilenetv2_100"))
        try:
            layout = get_backbone(backbone)
            base = ArchSpec.default(backbone)
        except ArchSpecError as exc:
            raise SpaceError(f"{name}: {exc}") from None
        n = len(layout.stages)
        every = data.get("every_stage")
        per_stage = data.get("stages") or {}
        if not isinstance(per_stage, Mapping):
            raise SpaceError(f"{name}: 'stages' must map stage numbers to lists of choices")
        choices: list[tuple[StageSpec, ...]] = []
        for i in range(n):
            raw = per_stage.get(i, per_stage.get(str(i), per_stage.get(f"stage{i}")))
            if raw is None and every is not None and base.stages[i].kernels:
                raw = every
            if raw is None:
                choices.append((base.stages[i],))
                continue
            choices.append(_parse_choices(raw, base, i, name))
        known = {str(i) for i in range(n)} | {f"stage{i}" for i in range(n)}
        bad = [k for k in per_stage if str(k) not in known]
        if bad:
            raise SpaceError(
                f"{name}: stage(s) {bad} do not exist; {backbone} has stage0..stage{n - 1}"
            )
        space = cls(
            name,
            backbone,
            tuple(choices),
            str(data.get("description", "")),
            bool(data.get("only_visible", False)),
        )
        if not space.searched_stages:
            raise SpaceError(
                f"{name}: no stage has more than one choice, so there is nothing to search"
            )
        return space


def _parse_choices(raw: Any, base: ArchSpec, i: int, name: str) -> tuple[StageSpec, ...]:
    if isinstance(raw, str) or not isinstance(raw, Sequence) or not raw:
        raise SpaceError(
            f"{name}: stage{i} needs a non-empty list of choices, e.g. [base, k3.5s1:1]"
        )
    out: list[StageSpec] = []
    for tok in raw:
        try:
            stage = base.stages[i] if str(tok) == "base" else StageSpec.parse(str(tok))
            base.with_stage(i, stage.kernels, stage.split)  # validates against the width
        except ArchSpecError as exc:
            raise SpaceError(f"{name}: stage{i}: {exc}") from None
        if stage not in out:
            out.append(stage)
    return tuple(out)


def load_space(
    name_or_path: str | Path = "default",
    backbone: str | None = None,
    *,
    resolution: int | None = None,
) -> SearchSpace:
    """Load a preset (``paper``, ``default``, ``every-stage``) or a YAML/JSON space file.

    Args:
        name_or_path: preset name or path to a ``.yaml``/``.yml``/``.json`` file.
        backbone: optional timm backbone replacing the one the file names.
        resolution: the proxy's input side (px); a space with ``only_visible`` then searches
            only the stages visible there (:meth:`SearchSpace.visible_at`).

    Raises:
        SpaceError: unknown preset, unreadable or invalid file (one line saying what to fix).
    """
    text_name = str(name_or_path)
    if text_name in PRESETS:
        text = resources.files(__package__).joinpath("presets", f"{text_name}.yaml").read_text()
        label = text_name
    else:
        path = Path(text_name)
        if path.suffix.lower() not in {".yaml", ".yml", ".json"}:
            raise SpaceError(
                f"unknown space {text_name!r}: use a preset ({', '.join(PRESETS)}) or a .yaml/.json file"
            )
        try:
            text = path.read_text()
        except OSError as exc:
            raise SpaceError(f"cannot read space file {path}: {exc.strerror}") from None
        label = path.name
    try:
        data = json.loads(text) if label.endswith(".json") else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        where = f"{text_name}, line {exc.lineno}, column {exc.colno}"
        raise SpaceError(f"{where}: not valid JSON: {exc.msg}; fix the file there") from None
    except yaml.YAMLError as exc:
        raise SpaceError(f"{_yaml_error_place(exc, text_name)}; fix the file there") from None
    space = SearchSpace.from_dict(data, label, backbone)
    if space.only_visible and resolution is not None:
        space = space.visible_at(int(resolution))
    return space


def _yaml_error_place(exc: yaml.YAMLError, file: str) -> str:
    """``FILE, line L, column C: not valid YAML: <problem> (<context>)``, 1-based like an
    editor's (PyYAML's marks count from 0); without a mark, the error's first line."""
    mark = getattr(exc, "problem_mark", None)
    if not isinstance(exc, yaml.MarkedYAMLError) or mark is None:
        return f"{file}: not valid YAML: {str(exc).splitlines()[0]}"
    problem = exc.problem or "syntax error"
    context = f" ({exc.context})" if exc.context else ""
    return f"{file}, line {mark.line + 1}, column {mark.column + 1}: not valid YAML: {problem}{context}"
