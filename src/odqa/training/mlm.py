"""Masked-LM pretraining: from scratch with a named small config, or continued from an encoder
(task-adaptive pretraining on the task's own text).

Documents (any format `odqa.io.read_documents` reads: JSONL(.xz), SQuAD contexts, wiki dict) are
tokenized, joined with [SEP] and packed into full sequences; masks are drawn anew for every batch
(dynamic masking, BERT's 80/10/10); the LM head runs only on masked positions, which on a 32k
vocabulary is most of the saving. The shared loop gives checkpoints, resume and a time budget."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from odqa.errors import OdqaError
from odqa.training.loop import LoopSettings, seed_everything
from odqa.training.task import TrainingTask, run_task, training_record

log = logging.getLogger(__name__)

# Named encoder sizes for pretraining from scratch (BERT architecture).
SIZES = {
    "tiny": {"num_hidden_layers": 2, "hidden_size": 128, "num_attention_heads": 2, "intermediate_size": 512},
    "small": {"num_hidden_layers": 4, "hidden_size": 256, "num_attention_heads": 4, "intermediate_size": 1024},
    "medium": {"num_hidden_layers": 6, "hidden_size": 512, "num_attention_heads": 8, "intermediate_size": 2048},
    "base": {"num_hidden_layers": 12, "hidden_size": 768, "num_attention_heads": 12, "intermediate_size": 3072},
}


class MlmConfig(LoopSettings):
    what = "pretraining config"

    tokenizer: str | None = None  # required from scratch; defaults to the model's own when continuing
    corpus: list[str]
    out: str
    model: str | None = None  # continue pretraining this encoder instead of starting from scratch
    size: str = "small"
    max_length: int = 128
    mask_probability: float = 0.15
    max_documents: int | None = None
    # masked-LM defaults differ from fine-tuning ones
    epochs: float = 1.0
    batch_size: int = 64
    lr: float = 5e-4
    warmup_ratio: float = 0.06
    group_by_length: bool = False


def pack_sequences(tokenizer, texts, max_length: int, limit_tokens: int | None = None, chunk: int = 256) -> np.ndarray:
    """Token ids of `texts` joined by [SEP] and cut into rows of `max_length` framed by [CLS] … [SEP]."""
    body = max_length - 2
    pieces, total, batch = [], 0, []

    def flush():
        nonlocal total
        for ids in tokenizer(batch, add_special_tokens=False, verbose=False)["input_ids"]:
            if ids:
                pieces.append(np.asarray(ids + [tokenizer.sep_token_id], dtype=np.int32))
                total += len(ids) + 1
        batch.clear()

    for text in texts:
        batch.append(text)
        if len(batch) >= chunk:
            flush()
            if limit_tokens and total >= limit_tokens:
                break
    if batch:
        flush()
    if not pieces:
        raise OdqaError("the corpus has no text to pretrain on")
    stream = np.concatenate(pieces)
    rows = len(stream) // body
    if rows == 0:
        raise OdqaError(f"the corpus holds {len(stream)} tokens, fewer than one sequence of {max_length}")
    grid = stream[: rows * body].reshape(rows, body)
    framed = np.empty((rows, max_length), dtype=np.int32)
    framed[:, 0] = tokenizer.cls_token_id
    framed[:, 1:-1] = grid
    framed[:, -1] = tokenizer.sep_token_id
    return framed


def mask_tokens(
    ids: np.ndarray, tokenizer, probability: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """BERT masking: of the chosen non-special tokens, 80% → [MASK], 10% → random, 10% kept."""
    special = np.isin(ids, tokenizer.all_special_ids)
    chosen = (rng.random(ids.shape) < probability) & ~special
    labels = np.where(chosen, ids, -100).astype(np.int64)
    inputs = ids.astype(np.int64).copy()
    roll = rng.random(ids.shape)
    inputs[chosen & (roll < 0.8)] = tokenizer.mask_token_id
    swap = chosen & (roll >= 0.8) & (roll < 0.9)
    inputs[swap] = rng.integers(0, len(tokenizer), size=int(swap.sum()))
    return inputs, labels


def _masked_only(model):
    """Wrap a BERT/RoBERTa masked-LM so the vocabulary projection runs on masked positions only."""
    from types import SimpleNamespace

    from torch import nn

    head = getattr(model, "cls", None) or getattr(model, "lm_head", None)
    if head is None:
        return model

    class MaskedOnly(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = model

        def forward(self, input_ids, attention_mask, labels):
            hidden = self.inner.base_model(input_ids=input_ids, attention_mask=attention_mask)[0]
            picked = labels != -100
            logits = head(hidden[picked])
            loss = nn.functional.cross_entropy(logits.float(), labels[picked]) if picked.any() else hidden.sum() * 0
            return SimpleNamespace(loss=loss)

    return MaskedOnly()


def pretrain_mlm(config: MlmConfig, quiet: bool = False, resume: bool = True) -> dict:
    import torch
    from transformers import AutoModelForMaskedLM, BertConfig, BertForMaskedLM

    from odqa.io import read_documents
    from odqa.models.loading import check_model_dir, load_pretrained, save_pretrained
    from odqa.models.tokenizer import load_tokenizer, save_tokenizer

    if config.model is None and config.size not in SIZES:
        raise OdqaError(f"unknown size {config.size!r}; choose one of {', '.join(SIZES)}")
    if config.model is None and not config.tokenizer:
        raise OdqaError("pretraining from scratch needs --tokenizer")
    if config.model:
        check_model_dir(config.model)
    tokenizer = load_tokenizer(config.tokenizer or config.model)
    if tokenizer.mask_token_id is None:
        raise OdqaError("the tokenizer has no mask token; masked-LM pretraining needs one")

    limit_tokens = None
    if config.max_steps and not config.max_documents:
        limit_tokens = int(config.max_steps * config.batch_size * config.grad_accum * config.max_length * 1.1)

    from odqa.relation.data import relation_sentences

    def texts():
        count = 0
        for path in config.corpus:
            sentences = relation_sentences(path)  # KLUE-RE sentences: task-adaptive pretraining
            documents = (
                (d.title + "\n" + d.text if d.title else d.text for d in read_documents(path))
                if sentences is None
                else sentences
            )
            for text in documents:
                if config.max_documents is not None and count >= config.max_documents:
                    return
                count += 1
                yield text

    seed_everything(config.seed)
    rows = pack_sequences(tokenizer, texts(), config.max_length, limit_tokens)
    log.info("%d packed sequences of %d tokens", len(rows), config.max_length)

    if config.model:
        model = load_pretrained(AutoModelForMaskedLM, config.model, "a masked-LM encoder")
    else:
        model = BertForMaskedLM(
            BertConfig(
                vocab_size=len(tokenizer),
                max_position_embeddings=512,
                pad_token_id=tokenizer.pad_token_id or 0,
                **SIZES[config.size],
            )
        )
    wrapped = _masked_only(model)
    rng = np.random.default_rng(config.seed)

    def collate(indices):
        inputs, labels = mask_tokens(rows[indices], tokenizer, config.mask_probability, rng)
        return {
            "input_ids": torch.from_numpy(inputs),
            "attention_mask": torch.ones(inputs.shape, dtype=torch.long),
            "labels": torch.from_numpy(labels),
        }

    record = training_record(config, {"corpus": config.corpus}, {"sequences": len(rows)})

    def save(trained, folder: Path, record: dict) -> None:
        save_pretrained(getattr(trained, "inner", trained), folder)
        save_tokenizer(tokenizer, folder)
        (folder / "odqa_pretraining.json").write_text(json.dumps(record, indent=2), encoding="utf-8")

    lengths = np.full(len(rows), config.max_length, dtype=np.int64)
    return run_task(TrainingTask(wrapped, lengths, collate, save, record), config, config.out, quiet, resume)
