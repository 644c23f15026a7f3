"""Keeping parts of a model fixed while the rest trains (`freeze_embeddings`, `freeze_layers` of every
trainer's settings): the word embeddings, or the embeddings and the lowest encoder layers, of every
transformers encoder inside the model."""

from __future__ import annotations

from odqa.errors import OdqaError


def transformers_bases(model) -> list:
    """The transformers base models inside `model`: a reader's or reranker's encoder, a relation
    model's, both towers of a bi-encoder with a separate question encoder."""
    from transformers import PreTrainedModel

    return [m for m in model.modules() if isinstance(m, PreTrainedModel) and m.base_model is m]


def freeze_word_embeddings(model) -> None:
    """Fix the word-embedding matrix of every encoder in `model` (a bi-encoder has no
    get_input_embeddings of its own; its towers do)."""
    for base in transformers_bases(model) or [model]:
        base.get_input_embeddings().weight.requires_grad_(False)


def freeze_lower_layers(model, count: int) -> None:
    """Fix the embeddings and the lowest `count` layers of every transformers encoder in `model`
    (a reader's, a relation model's, both towers of a bi-encoder): autograd then stops above them,
    so a step skips their backward pass and AdamW their weights."""
    bases = transformers_bases(model)
    if not bases:
        raise OdqaError("freeze_layers needs a transformers encoder in the model")
    for base in bases:
        layers = encoder_layers(base)
        if count > len(layers):
            raise OdqaError(f"freeze_layers is {count} but the encoder has {len(layers)} layers")
        embeddings = getattr(base, "embeddings", None) or base.get_input_embeddings()
        for module in (embeddings, *layers[:count]):
            module.requires_grad_(False)


def encoder_layers(base) -> list:
    """The stack of `base.config.num_hidden_layers` blocks of a transformers base model, lowest first."""
    from torch import nn

    wanted = getattr(base.config, "num_hidden_layers", None)
    for module in base.modules():
        if isinstance(module, nn.ModuleList) and len(module) == wanted:
            return list(module)
    raise OdqaError(f"cannot find the {wanted} layers of {type(base).__name__}")
