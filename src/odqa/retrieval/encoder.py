"""The bi-encoder: any Hugging Face encoder turned into question and passage vectors (CLS or mean
pooling; dot or cosine; E5-style prefixes), batched by length; the dense index
(`odqa.retrieval.dense`), the on-the-fly re-scorer (`odqa.retrieval.rescore`) and dense training
share it.

    encoder = DenseEncoder.load("models/me5-small")          # precision="bf16": faster on bf16 CPUs and GPUs
    vectors = encoder.encode(["한국 전쟁이 시작된 해는?"], "query")
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from odqa.errors import OdqaError
from odqa.settings import Settings

ENCODER_FILE = "odqa_encoder.json"
ENCODE_CHUNK = 8192  # texts tokenized (and sorted by length) at a time


class EncoderConfig(Settings):
    what = "dense encoder config"

    pooling: Literal["cls", "mean"] = "cls"
    similarity: Literal["dot", "cosine"] = "dot"
    query_max_length: int = 64
    passage_max_length: int = 256
    batch_size: int = 64
    query_prefix: str = ""  # E5-style encoders were trained with "query: " / "passage: " before the text
    passage_prefix: str = ""


def imported_defaults(path: str | Path) -> dict:
    """Encoder settings an imported model's manifest recommends (E5: mean pooling, cosine, prefixes)."""
    manifest = Path(path) / "odqa_model.json"
    if not manifest.exists():
        return {}
    recommended = json.loads(manifest.read_text(encoding="utf-8")).get("encoder") or {}
    defaults = {key: recommended[key] for key in ("pooling", "query_prefix", "passage_prefix") if key in recommended}
    if recommended.get("normalize"):
        defaults["similarity"] = "cosine"
    return defaults


def pool_tokens(hidden, attention_mask, pooling: str):
    """One vector per sequence from token states (torch): the first token's, or the mean over
    real (unpadded) tokens."""
    if pooling == "cls":
        return hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class DenseEncoder:
    """Question and passage encoders (the same weights unless `question_model` is given).
    `precision="bf16"` encodes with every weight in bfloat16 (vectors stay float32): faster on GPUs
    and on CPUs with AVX512-BF16 or AMX (benchmarks/rescore_ko.py measures speed and rankings);
    such an encoder encodes but cannot be saved."""

    def __init__(
        self,
        model,
        tokenizer,
        config: EncoderConfig | None = None,
        question_model=None,
        device: str | None = None,
        precision: str = "fp32",
    ):
        from odqa.models.loading import check_prediction_precision, pick_device, to_bf16

        check_prediction_precision(precision, "encoder")
        self.model, self.tokenizer = model, tokenizer
        self.question_model = question_model or model
        self.config = config or EncoderConfig()
        self.device = pick_device(device)
        self.precision = precision
        self.model.to(self.device).eval()
        self.question_model.to(self.device).eval()
        if precision == "bf16":
            shared = self.question_model is self.model
            self.model = to_bf16(self.model, self.device)
            self.question_model = self.model if shared else to_bf16(self.question_model, self.device)

    @classmethod
    def load(cls, path: str | Path, device: str | None = None, precision: str = "fp32", **overrides) -> DenseEncoder:
        from transformers import AutoModel

        from odqa.models.loading import POOLER, check_model_dir, load_pretrained
        from odqa.models.tokenizer import load_tokenizer

        check_model_dir(path)
        settings = Path(path) / ENCODER_FILE
        saved = json.loads(settings.read_text(encoding="utf-8")) if settings.exists() else {}
        config = EncoderConfig.from_dict({**imported_defaults(path), **saved.get("encoder", {}), **overrides})
        model = load_pretrained(AutoModel, path, "an encoder", POOLER)  # pooling is ours: the pooler never runs
        question_model = None
        if (Path(path) / "question").is_dir():
            question_model = load_pretrained(AutoModel, Path(path) / "question", "a question encoder", POOLER)
        return cls(model, load_tokenizer(path), config, question_model, device, precision)

    @property
    def dim(self) -> int:
        """Length of the vectors this encoder makes."""
        return int(self.model.config.hidden_size)

    def save(self, path: str | Path, extra: dict | None = None) -> None:
        from odqa.models.loading import save_pretrained
        from odqa.models.tokenizer import save_tokenizer

        if self.precision != "fp32":
            raise OdqaError(f"this encoder's weights were rounded to {self.precision} for encoding; save it as loaded")
        path = Path(path)
        save_pretrained(self.model, path)
        if self.question_model is not self.model:
            save_pretrained(self.question_model, path / "question")
        save_tokenizer(self.tokenizer, path)
        (path / ENCODER_FILE).write_text(
            json.dumps({"encoder": self.config.to_dict(), **(extra or {})}, indent=2), encoding="utf-8"
        )

    def pool(self, hidden, attention_mask):
        """Sentence vectors from token states (torch tensors), normalised for cosine similarity."""
        import torch

        vectors = pool_tokens(hidden, attention_mask, self.config.pooling)
        if self.config.similarity == "cosine":
            vectors = torch.nn.functional.normalize(vectors, dim=-1)
        return vectors

    def encode(
        self, texts: Sequence[str], kind: Literal["query", "passage"] = "passage", progress: bool = False
    ) -> np.ndarray:
        """float32 vectors (n, dim) in the order of `texts`. Texts are tokenized a chunk at a time
        in one call, sorted by token count and batched longest first, so batches carry almost no
        padding."""
        import torch

        from odqa.progress import progress as bar

        model = self.question_model if kind == "query" else self.model
        prefix = self.config.query_prefix if kind == "query" else self.config.passage_prefix
        max_length = self.config.query_max_length if kind == "query" else self.config.passage_max_length
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        with (
            torch.inference_mode(),
            bar(total=len(texts), desc=f"encoding {kind}s", unit=kind, quiet=not progress) as pbar,
        ):
            for first in range(0, len(texts), ENCODE_CHUNK):
                chunk = [prefix + str(t) for t in texts[first : first + ENCODE_CHUNK]]
                encoded = self.tokenizer(chunk, truncation=True, max_length=max_length, return_attention_mask=False)
                ids, types = encoded["input_ids"], encoded.get("token_type_ids")
                order = np.argsort([-len(row) for row in ids], kind="stable")
                for lo in range(0, len(chunk), self.config.batch_size):
                    rows = order[lo : lo + self.config.batch_size]
                    width = len(ids[rows[0]])
                    input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
                    mask = np.zeros((len(rows), width), dtype=np.int64)
                    for r, i in enumerate(rows):
                        input_ids[r, : len(ids[i])] = ids[i]
                        mask[r, : len(ids[i])] = 1
                    batch = {"input_ids": input_ids, "attention_mask": mask}
                    if types is not None:  # single sequences: segment 0 throughout
                        batch["token_type_ids"] = np.zeros_like(input_ids)
                    batch = {k: torch.from_numpy(v).to(self.device) for k, v in batch.items()}
                    vectors = self.pool(model(**batch).last_hidden_state.float(), batch["attention_mask"])
                    out[first + rows] = vectors.float().cpu().numpy()
                    pbar.update(len(rows))
        return out


def built_encoder(built: dict, device: str | None = None) -> DenseEncoder:
    """The encoder an index names (`built`: its manifest's encoder entry), in the precision the
    index was encoded in (bf16: `index-dense --bf16`), so queries and added passages are encoded alike."""
    return DenseEncoder.load(built["path"], device=device, precision=built.get("precision", "fp32"))


def check_built_with(encoder: DenseEncoder, built: dict, dim: int, name: str) -> None:
    """Refuse an encoder whose settings or dimension differ from those the index `name` was built
    with (`built`: its manifest's encoder entry)."""
    built_settings = {
        key: built.get(key, EncoderConfig.model_fields[key].default)
        for key in ("pooling", "similarity", "query_prefix", "passage_prefix")
    }
    now = {key: getattr(encoder.config, key) for key in built_settings}
    if built_settings != now:
        changed = ", ".join(
            f"{key} {built_settings[key]!r} at build, {now[key]!r} now"
            for key in built_settings
            if built_settings[key] != now[key]
        )
        raise OdqaError(
            f"{name} was built with other encoder settings than its encoder now has ({changed}); "
            "rebuild it or use the settings it was built with"
        )
    if encoder.dim != dim:
        raise OdqaError(
            f"{name} holds {dim}-dimensional vectors but the encoder makes {encoder.dim}: it was built by another "
            f"encoder ({built.get('path') or 'unnamed'}); search it with that one or rebuild it"
        )
