"""Accuracy rules (DESIGN §6): ``argmax``, ``threshold``, ``sign``, ``none`` and ``auto``.

Kept apart from the epoch loop so :mod:`mosaic.exec.training.loop` and :mod:`mosaic.exec.training.epoch`
both stand on it.
"""

from __future__ import annotations

import torch

from mosaic.errors import TrainingError

ACCURACY_RULES = ("auto", "argmax", "threshold", "sign", "none")


def _class_indices(prediction: torch.Tensor, target: torch.Tensor) -> bool:
    return (
        prediction.ndim >= 2
        and prediction.shape[-1] > 1
        and not target.is_floating_point()
        and target.shape == prediction.shape[:-1]
    )


def resolve_accuracy(rule: str, prediction: torch.Tensor, target: torch.Tensor) -> str:
    """Turn ``auto`` into ``argmax``, ``threshold`` or ``none`` for this prediction/target pair."""
    if rule not in ACCURACY_RULES:
        raise TrainingError(f"accuracy '{rule}' is not one of {', '.join(ACCURACY_RULES)}; fix [PROCESS] accuracy")
    if rule != "auto":
        return rule
    if _class_indices(prediction, target):
        return "argmax"
    if prediction.numel() == target.numel() and bool(is_binary(target)):
        return "threshold"
    return "none"


def is_binary(target: torch.Tensor) -> torch.Tensor:
    return ((target == 0) | (target == 1)).all()


def _aligned(rule: str, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if prediction.shape == target.shape:
        return prediction
    if prediction.numel() == target.numel():
        return prediction.reshape(target.shape)
    raise TrainingError(
        f"accuracy '{rule}': prediction shape {tuple(prediction.shape)} does not match target shape "
        f"{tuple(target.shape)}; set accuracy = none (or argmax for class scores) in [PROCESS]"
    )


def accuracy_counts(rule: str, prediction: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, int] | None:
    """``(correct, total)`` for one batch under a resolved rule; None for ``none``.

    ``correct`` stays a tensor on the batch's device so the loop does not synchronise.
    """
    prediction = prediction.detach()
    if rule == "none":
        return None
    if rule == "argmax":
        if prediction.ndim < 1 or prediction.shape[-1] < 2:
            raise TrainingError(
                f"accuracy 'argmax' needs class scores in the last dimension; prediction shape is "
                f"{tuple(prediction.shape)}. Use threshold, sign or none"
            )
        if target.shape == prediction.shape:
            labels = target.argmax(-1)
        elif target.numel() == prediction.numel() // prediction.shape[-1]:
            labels = target.reshape(prediction.shape[:-1])
        else:
            raise TrainingError(
                f"accuracy 'argmax': target shape {tuple(target.shape)} fits neither class indices nor "
                f"one-hot rows for prediction shape {tuple(prediction.shape)}"
            )
        return (prediction.argmax(-1) == labels).sum(), labels.numel()
    cut = 0.5 if rule == "threshold" else 0.0
    if rule not in ("threshold", "sign"):
        raise TrainingError(f"accuracy '{rule}' is not one of {', '.join(ACCURACY_RULES)}")
    prediction = _aligned(rule, prediction, target)
    return ((prediction > cut) == (target > cut)).sum(), target.numel()
