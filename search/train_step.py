"""What one optimizer step of the training loop (:func:`mdsearch.search.training.train`) does
with a batch: the step strategies.

A :class:`TrainStep` builds the network it trains and runs one step's forward and backward
passes; the loop does the rest (zero the gradients, the optimizer and schedule step, the loss
sum, the checkpointable state). :class:`StandaloneStep` trains one architecture with one loss
(:func:`one_loss`): the proxy and ``mdsearch train``. The supernet's sandwich step
(:class:`~mdsearch.search.supernet.SandwichStep`) trains several sub-networks per step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from mdsearch.space import ArchSpec

if TYPE_CHECKING:  # torch is imported where it runs
    import torch
    from torch import nn

    from .settings import TrainRecipe

__all__ = ["StandaloneStep", "StepFn", "TrainStep", "one_loss"]

#: One optimizer step's forward and backward passes: ``step(model, x, y)`` leaves the gradients
#: of the batch in the parameters and returns ``(loss, images)``: the loss summed over the images
#: it was computed on (a detached 0-dim tensor on the model's device; the loop adds them up there)
#: and how many images the forward passes processed (every sub-network counted).
StepFn = Callable[["nn.Module", "torch.Tensor", "torch.Tensor"], "tuple[torch.Tensor, int]"]


def one_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, int]:
    """The stand-alone step: BCE-with-logits (multi-label) of ``model`` on the batch, backward.

    Returns:
        ``(loss x images, images)`` (see :data:`StepFn`).
    """
    import torch

    loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
    loss.backward()
    return loss.detach() * len(x), len(x)


class TrainStep(Protocol):
    """What one training step is, for :func:`train`: the network it trains, the forward and
    backward passes of one optimizer step, and the random state of its own that a resumed
    training must continue from (:meth:`TrainingRun.state` stores it under ``step``)."""

    def build(self, recipe: TrainRecipe) -> nn.Module:
        """The randomly initialised network (the global torch generator is seeded before)."""
        ...

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, int]:
        """One step's forward and backward passes (:data:`StepFn`)."""
        ...

    def state(self) -> dict[str, Any]:
        """The step's own random state (``{}`` when it has none)."""
        ...

    def restore(self, state: Mapping[str, Any]) -> None:
        """Continue from a :meth:`state`."""
        ...


@dataclass(frozen=True)
class StandaloneStep:
    """The :class:`TrainStep` of one architecture: ``build(spec)``, :func:`one_loss` per step.

    Args:
        spec: the architecture.
    """

    spec: ArchSpec

    def build(self, recipe: TrainRecipe) -> nn.Module:
        """``mdsearch.mdconv.build(spec)`` with the recipe's head init."""
        from mdsearch.mdconv import build

        return build(self.spec, head_init=recipe.head_init)

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, int]:
        return one_loss(model, x, y)

    def state(self) -> dict[str, Any]:
        """No random state of its own."""
        return {}

    def restore(self, state: Mapping[str, Any]) -> None:
        """Nothing to restore."""
