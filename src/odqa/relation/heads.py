"""Relation heads: how an encoder's token states become one vector per example, and the losses.

Poolings, chosen by name (`POOLINGS`), each `(hidden, dropout) -> module(states, batch) -> (batch,
width)` with its width:

- `cls`: the first token through dense + tanh (RoBERTa's classification head);
- `entity-start`: the states of the subject's and the object's opening markers, concatenated (the
  strongest pooling of Baek et al.'s improved baseline);
- `rbert`: R-BERT — the first token and the mean of each entity's tokens, each through its own
  dense + tanh, concatenated.

An optional two-layer BiLSTM runs over the states first. Losses (`LOSSES`): `ce`, `weighted`
(cross-entropy with class weights 1/√frequency, mean 1) and `focal` (γ = 2) for the heavy
`no_relation` share."""

from __future__ import annotations

from collections.abc import Callable

from odqa.errors import OdqaError


def _gather(states, positions):
    import torch

    return states[torch.arange(states.size(0), device=states.device), positions]


def _span_mean(states, spans):
    import torch

    steps = torch.arange(states.size(1), device=states.device)[None, :]
    inside = ((steps >= spans[:, :1]) & (steps < spans[:, 1:])).to(states.dtype)
    return (states * inside[..., None]).sum(1) / inside.sum(1, keepdim=True).clamp(min=1)


def _cls(hidden: int, dropout: float):
    from torch import nn

    class ClsPooling(nn.Module):
        width = hidden

        def __init__(self):
            super().__init__()
            self.dense, self.dropout = nn.Linear(hidden, hidden), nn.Dropout(dropout)

        def forward(self, states, batch):
            return self.dropout(self.dense(self.dropout(states[:, 0])).tanh())

    return ClsPooling()


def _entity_start(hidden: int, dropout: float):
    import torch
    from torch import nn

    class EntityStartPooling(nn.Module):
        width = 2 * hidden

        def __init__(self):
            super().__init__()
            self.dropout = nn.Dropout(dropout)

        def forward(self, states, batch):
            pair = torch.cat([_gather(states, batch["subject_marker"]), _gather(states, batch["object_marker"])], -1)
            return self.dropout(pair)

    return EntityStartPooling()


def _rbert(hidden: int, dropout: float):
    import torch
    from torch import nn

    class RBertPooling(nn.Module):
        width = 3 * hidden

        def __init__(self):
            super().__init__()
            self.cls, self.entity = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)
            self.dropout = nn.Dropout(dropout)

        def forward(self, states, batch):
            def fc(layer, x):
                return layer(self.dropout(x).tanh())

            return torch.cat(
                [
                    fc(self.cls, states[:, 0]),
                    fc(self.entity, _span_mean(states, batch["subject_span"])),
                    fc(self.entity, _span_mean(states, batch["object_span"])),
                ],
                -1,
            )

    return RBertPooling()


POOLINGS: dict[str, Callable] = {"cls": _cls, "entity-start": _entity_start, "rbert": _rbert}


def check_pooling(name: str) -> str:
    if name not in POOLINGS:
        raise OdqaError(f"unknown relation pooling {name!r}; choose one of {', '.join(POOLINGS)}")
    return name


def _cross_entropy(logits, labels, weights=None, gamma: float = 2.0):
    from torch.nn import functional

    return functional.cross_entropy(logits, labels)


def _weighted(logits, labels, weights=None, gamma: float = 2.0):
    from torch.nn import functional

    return functional.cross_entropy(logits, labels, weight=weights)


def _focal(logits, labels, weights=None, gamma: float = 2.0):
    """Focal loss: cross-entropy scaled by (1 - p_gold)^γ, so easy examples count less."""
    from torch.nn import functional

    log_p = functional.log_softmax(logits, -1).gather(1, labels[:, None]).squeeze(1)
    return (-((1 - log_p.exp()) ** gamma) * log_p).mean()


LOSSES: dict[str, Callable] = {"ce": _cross_entropy, "weighted": _weighted, "focal": _focal}


def check_loss(name: str) -> str:
    if name not in LOSSES:
        raise OdqaError(f"unknown relation loss {name!r}; choose one of {', '.join(LOSSES)}")
    return name


def class_weights(counts) -> list[float]:
    """1/√count per label, scaled to mean 1 (a label absent from training gets the largest)."""
    import numpy as np

    counts = np.maximum(np.asarray(counts, dtype=np.float64), 1.0)
    weights = counts**-0.5
    return (weights / weights.mean()).tolist()
