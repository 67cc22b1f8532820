"""Loss on aligned shapes (DESIGN §9): never a silent broadcast.

The original squeezed prediction and target before the loss, so a model ending in
``Linear(..., 1)`` (shape ``(B, 1)``) trained against targets of shape ``(B,)``.
:class:`AlignedLoss` wraps a run's loss and keeps that behaviour, robustly:

- same shapes, or a prediction that is not a tensor: the loss is called as is;
- shapes that differ only by size-1 dimensions (``(B, 1)`` vs ``(B,)``, ``(1, 1)`` vs ``(1,)``):
  the prediction is viewed in the target's shape (a reshape of equal-sized tensors, no copy);
- other shapes with an element-wise loss (MSE, L1, BCE... and their subclasses), or any loss
  for which torch warns that it broadcasts: :class:`~mosaic.errors.TrainingError`
  naming both shapes and the fix;
- anything else (``CrossEntropyLoss`` with ``(B, C)`` scores and ``(B,)`` indices): as is.

The decision is taken once per pair of shapes (the first batch, and a last partial batch),
so a batch costs one dictionary look-up.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch

from mosaic.errors import TrainingError

#: Losses whose prediction and target must have the same shape (subclasses included).
ELEMENTWISE = (
    torch.nn.MSELoss,
    torch.nn.L1Loss,
    torch.nn.SmoothL1Loss,
    torch.nn.HuberLoss,
    torch.nn.BCELoss,
    torch.nn.BCEWithLogitsLoss,
    torch.nn.SoftMarginLoss,
    torch.nn.KLDivLoss,
    torch.nn.PoissonNLLLoss,
    torch.nn.MultiLabelSoftMarginLoss,
)
_PASS = None  # plan: call the loss unchanged
_MAX_PLANS = 64  # shape pairs remembered; past that (variable-length data) each batch decides again


def squeezed(shape: torch.Size | tuple[int, ...]) -> tuple[int, ...]:
    """``shape`` without its size-1 dimensions."""
    return tuple(size for size in shape if size != 1)


def alignment(prediction_shape: tuple[int, ...], target_shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """The shape to view the prediction in, or None when the shapes are left as they are.

    Shapes that agree once size-1 dimensions are removed give the target's shape.
    """
    if tuple(prediction_shape) == tuple(target_shape):
        return None
    if squeezed(prediction_shape) == squeezed(target_shape):
        return tuple(target_shape)
    return None


def _name(loss: Any) -> str:
    return type(loss).__name__ if not isinstance(loss, type) else loss.__name__


def mismatch_error(loss: Any, prediction_shape: tuple[int, ...], target_shape: tuple[int, ...]) -> TrainingError:
    """The run's error for a loss that would broadcast two different shapes."""
    pred, target = tuple(prediction_shape), tuple(target_shape)
    try:
        into = f" into {tuple(torch.broadcast_shapes(pred, target))}"
    except RuntimeError:
        into = ""
    return TrainingError(
        f"loss {_name(loss)}: prediction shape {pred} and target shape {target} differ (beyond size-1 "
        f"dimensions), so the loss would broadcast them{into} and train on wrong pairs; make the model's "
        "output match the target: e.g. output_size = the target's width, or reshape in forward() or in the "
        "data class"
    )


class AlignedLoss:
    """A run's loss, called on prediction and target of aligned shapes (see the module docstring)."""

    def __init__(self, loss: Callable[[Any, Any], torch.Tensor]) -> None:
        self.loss = loss
        self.elementwise = isinstance(loss, ELEMENTWISE)
        self._plans: dict[tuple[torch.Size, torch.Size], tuple[int, ...] | None] = {}

    def __call__(self, prediction: Any, target: Any) -> torch.Tensor:
        """``loss(prediction, target)`` with the prediction viewed in the target's shape when needed."""
        try:
            plan = self._plans[(prediction.shape, target.shape)]
        except (KeyError, AttributeError):
            return self._first(prediction, target)
        if plan is _PASS:
            return self.loss(prediction, target)
        return self.loss(prediction.reshape(plan), target)

    def _first(self, prediction: Any, target: Any) -> torch.Tensor:
        """Decide for a new pair of shapes, then compute this batch's loss."""
        if not (isinstance(prediction, torch.Tensor) and isinstance(target, torch.Tensor)):
            return self.loss(prediction, target)
        pred_shape, target_shape = tuple(prediction.shape), tuple(target.shape)
        plan = alignment(pred_shape, target_shape)
        if plan is None and pred_shape != target_shape and self.elementwise:
            raise mismatch_error(self.loss, pred_shape, target_shape)
        if plan is not None:
            value = self.loss(prediction.reshape(plan), target)
        elif pred_shape == target_shape:
            value = self.loss(prediction, target)
        else:
            value = self._watch(prediction, target)
        if len(self._plans) < _MAX_PLANS:
            self._plans[(prediction.shape, target.shape)] = plan
        return value

    def _watch(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Call the loss once on different shapes; fail when torch warns that it broadcasts."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = self.loss(prediction, target)
        for warning in caught:
            if "broadcast" in str(warning.message):
                raise mismatch_error(self.loss, tuple(prediction.shape), tuple(target.shape))
        for warning in caught:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
        return value

    def __getattr__(self, name: str) -> Any:
        # the wrapped loss's own attributes (reduction, weight...) stay reachable
        if name == "loss":
            raise AttributeError(name)
        return getattr(self.loss, name)


def aligned(loss: Callable[[Any, Any], torch.Tensor]) -> Callable[[Any, Any], torch.Tensor]:
    """``loss`` wrapped in :class:`AlignedLoss` (once)."""
    return loss if isinstance(loss, AlignedLoss) else AlignedLoss(loss)
