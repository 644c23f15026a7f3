"""A relation classifier: an encoder, a pooling head, a linear layer over the labels, and what
it needs to read a sentence the way it was trained (input format, window, label list, entity
types). Saved as the encoder's own Hugging Face folder (with the marker tokens it added) plus
`relation_head.safetensors` and `odqa_relation.json`.

`odqa re calibrate` adds a temperature and a bias per label, applied to the logits (see
`odqa.relation.calibration`).

With `restrict_types`, the labels never seen in training with an example's (subject type, object
type) pair are ruled out (RECENT's idea, as a mask on the logits); a pair never seen in training
keeps every label, and `no_relation` is always allowed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import Field

from odqa.errors import OdqaError
from odqa.relation.data import NO_RELATION, RelationExample
from odqa.relation.heads import LOSSES, POOLINGS, check_loss, check_pooling
from odqa.relation.markers import FORMATS, check_format
from odqa.settings import Settings

CONFIG_FILE = "odqa_relation.json"
HEAD_FILE = "relation_head.safetensors"


class RelationModelConfig(Settings):
    """How a relation model reads its input and pools it; saved with the model."""

    what = "relation model config"

    format: str = "typed-punct"  # odqa.relation.markers.FORMATS
    question: bool = False  # add '이순신과 한산도의 관계는?' as a second segment
    max_length: int = 256
    pooling: str = "entity-start"  # odqa.relation.heads.POOLINGS
    bilstm: bool = False
    dropout: float = 0.1
    loss: str = "ce"  # odqa.relation.heads.LOSSES
    focal_gamma: float = 2.0
    restrict_types: bool = False
    labels: list[str] = Field(default_factory=list)
    types: list[str] = Field(default_factory=list)  # entity types seen in training
    allowed: dict[str, list[str]] = Field(default_factory=dict)  # 'PER|ORG' → labels seen with it
    # `odqa re calibrate`: logits / temperature + label_bias before the softmax (none by default)
    temperature: float = 1.0
    label_bias: list[float] = Field(default_factory=list)
    calibrated_on: str = ""  # the held-out file and how many sentences it had

    def check(self) -> RelationModelConfig:
        check_format(self.format)
        check_pooling(self.pooling)
        check_loss(self.loss)
        if self.temperature <= 0:
            raise OdqaError(f"temperature must be positive, got {self.temperature}")
        if self.label_bias and len(self.label_bias) != len(self.labels):
            raise OdqaError(f"label_bias has {len(self.label_bias)} values for {len(self.labels)} labels")
        return self


@dataclass(frozen=True)
class RelationOutput:
    logits: object
    loss: object = None


def type_pair_key(subject_type: str, object_type: str) -> str:
    return f"{subject_type}|{object_type}"


def allowed_labels(examples: list[RelationExample]) -> dict[str, list[str]]:
    """For each (subject type, object type) pair of the training examples, the labels seen with it."""
    seen: dict[str, set[str]] = {}
    for e in examples:
        seen.setdefault(type_pair_key(*e.type_pair), set()).add(e.label)
    return {pair: sorted(labels | {NO_RELATION}) for pair, labels in sorted(seen.items())}


def allowed_table(allowed: dict[str, list[str]], labels: list[str]) -> np.ndarray:
    """(type pairs of `allowed`, sorted, then one row for a pair never seen) × labels: true where the pair
    was seen with the label; the last row allows every label."""
    table = np.ones((len(allowed) + 1, len(labels)), dtype=bool)
    for row, pair in enumerate(sorted(allowed)):
        table[row] = np.isin(labels, allowed[pair])
    return table


def _module_class():
    import torch
    from torch import nn

    class RelationModel(nn.Module):
        """encoder → (BiLSTM) → pooling → linear over the labels; `forward(**batch)` gives
        logits (and the loss when `labels` are given), as the training loop expects."""

        def __init__(self, encoder, config: RelationModelConfig, class_weights=None):
            super().__init__()
            self.encoder, self.settings = encoder, config
            self.config = encoder.config
            hidden = encoder.config.hidden_size
            self.lstm = (
                nn.LSTM(hidden, hidden // 2, num_layers=2, batch_first=True, bidirectional=True, dropout=config.dropout)
                if config.bilstm
                else None
            )
            width = 2 * (hidden // 2) if config.bilstm else hidden
            self.pooling = POOLINGS[config.pooling](width, config.dropout)
            self.classifier = nn.Linear(self.pooling.width, len(config.labels))
            self.register_buffer("allowed", torch.from_numpy(allowed_table(config.allowed, config.labels)))
            weights = torch.tensor(class_weights, dtype=torch.float32) if class_weights is not None else None
            self.register_buffer("class_weights", weights, persistent=False)

        def forward(
            self,
            input_ids,
            attention_mask,
            subject_marker,
            object_marker,
            subject_span,
            object_span,
            type_pair=None,
            labels=None,
        ):
            states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            if self.lstm is not None:
                states = self.lstm(states)[0]
            batch = {
                "subject_marker": subject_marker,
                "object_marker": object_marker,
                "subject_span": subject_span,
                "object_span": object_span,
            }
            logits = self.classifier(self.pooling(states, batch)).float()
            if type_pair is not None and self.settings.restrict_types:
                logits = logits.masked_fill(~self.allowed[type_pair], -1e4)
            loss = None
            if labels is not None:
                loss = LOSSES[self.settings.loss](logits, labels, self.class_weights, self.settings.focal_gamma)
            return RelationOutput(logits, loss)

        def get_input_embeddings(self):
            return self.encoder.get_input_embeddings()

        def head_state(self) -> dict:
            state = self.state_dict().items()
            return {k: v.detach().contiguous().cpu() for k, v in state if not k.startswith("encoder.")}

    return RelationModel


def add_marker_tokens(tokenizer, encoder, tokens: list[str]) -> int:
    """Add the format's marker tokens to the vocabulary; each new embedding starts as the mean of
    the pieces its text had before (so '<subj:PER>' starts near '<', 'subj', ':', 'PER', '>'),
    which keeps it meaningful even when the embeddings are frozen. Returns how many were added."""
    import torch

    new = [t for t in tokens if t not in tokenizer.get_vocab()]
    if not new:
        return 0
    pieces = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in new]
    rows = encoder.get_input_embeddings().weight.shape[0]
    if rows != len(tokenizer):
        raise OdqaError(
            f"the encoder has {rows} embeddings but its tokenizer {len(tokenizer)} pieces; "
            "they must match to add marker tokens"
        )
    tokenizer.add_tokens(new, special_tokens=True)
    encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    weight = encoder.get_input_embeddings().weight
    with torch.no_grad():
        for offset, ids in enumerate(pieces):
            weight[rows + offset] = weight[ids].mean(0)
    return len(new)


def build_relation_model(encoder_path: str | Path, config: RelationModelConfig, class_weights=None):
    """A new relation model on an encoder folder: (model, tokenizer with the format's markers)."""
    from odqa.models.loading import load_encoder
    from odqa.models.tokenizer import load_tokenizer

    config.check()
    tokenizer = load_tokenizer(encoder_path)
    encoder = load_encoder(encoder_path)
    add_marker_tokens(tokenizer, encoder, FORMATS[config.format].tokens(config.types))
    return _module_class()(encoder, config, class_weights), tokenizer


class RelationClassifier:
    """A trained relation model ready to classify: `predict(examples) -> probabilities` (one row
    per example, columns in `labels` order), batched by length; `save(folder)`, `load(folder)`.
    With `int8`, its linear layers run as dynamically quantized int8 (CPU only, for prediction); with
    `bf16`, all its weights in bfloat16 (for prediction; fast on GPUs and on CPUs with AVX512-BF16 or
    AMX, where `benchmarks/relation.py --speed` measures it)."""

    def __init__(
        self,
        model,
        tokenizer,
        config: RelationModelConfig,
        device: str | None = None,
        int8: bool = False,
        bf16: bool = False,
    ):
        from odqa.models.loading import pick_device, quantize_int8, to_bf16

        if int8 and bf16:
            raise OdqaError("choose int8 or bf16 prediction, not both")
        self.model, self.tokenizer, self.config = model, tokenizer, config
        self.device = pick_device("cpu" if int8 and device is None else device)
        self.model = quantize_int8(self.model, self.device) if int8 else self.model.to(self.device).eval()
        if bf16:
            self.model = to_bf16(self.model, self.device)
        self.pairs = {pair: i for i, pair in enumerate(sorted(config.allowed))}

    @property
    def labels(self) -> list[str]:
        return self.config.labels

    def type_pairs(self, examples: list[RelationExample]) -> np.ndarray:
        unseen = len(self.pairs)
        return np.array([self.pairs.get(type_pair_key(*e.type_pair), unseen) for e in examples], dtype=np.int64)

    def check_types(self, examples: list[RelationExample]) -> None:
        """The typed formats with added tokens know only the types they were trained with."""
        if self.config.format != "typed":
            return
        known = set(self.config.types)
        for e in examples:
            for role, entity in (("subject", e.subject), ("object", e.object)):
                if entity.type not in known:
                    raise OdqaError(
                        f"{e.guid}: {role} type {entity.type!r} was not seen in training "
                        f"(this model knows {', '.join(sorted(known))})"
                    )

    def encode(self, examples: list[RelationExample]):
        from odqa.relation.features import encode_examples

        self.check_types(examples)
        return encode_examples(
            self.tokenizer, examples, self.config.format, self.config.max_length, self.config.question
        )

    def predict(self, examples: list[RelationExample], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """Probabilities (examples × labels), in the examples' order; batches of similar length."""
        import torch

        from odqa.progress import progress as progress_bar

        if not examples:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        features = self.encode(examples)
        pairs = self.type_pairs(examples)
        order = np.argsort(-features.lengths, kind="stable")
        out = np.zeros((len(examples), len(self.labels)), dtype=np.float32)
        pad = self.tokenizer.pad_token_id or 0
        bar = progress_bar(total=len(examples), desc="classifying", unit="sentence", quiet=not progress)
        bias = torch.tensor(self.config.label_bias or [0.0] * len(self.labels), device=self.device)
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                indices = order[start : start + batch_size]
                batch = {k: torch.from_numpy(v).to(self.device) for k, v in features.batch(indices, pad).items()}
                batch["type_pair"] = torch.from_numpy(pairs[indices]).to(self.device)
                logits = self.model(**batch).logits.float() / self.config.temperature + bias
                out[indices] = torch.softmax(logits, -1).cpu().numpy()
                bar.update(len(indices))
        bar.close()
        return out

    def restrict_types(self, on: bool) -> RelationClassifier:
        """Rule out (or allow again) the labels never seen with an example's entity-type pair in training,
        for every later prediction, whatever the model was trained with; `save` keeps the choice."""
        self.config = self.config.model_copy(update={"restrict_types": on})
        self.model.settings = self.config
        return self

    def calibrate(self, calibration: dict | None, source: str = "") -> RelationClassifier:
        """Apply a calibration from `odqa.relation.calibration.fit_calibration` to every later
        prediction (None: remove it); `save` keeps it."""
        update = {"temperature": 1.0, "label_bias": [], "calibrated_on": ""}
        if calibration is not None:
            update = {"temperature": calibration["temperature"], "label_bias": calibration["bias"]}
            update["calibrated_on"] = source
        self.config = self.config.model_copy(update=update).check()
        return self

    def save(self, folder: str | Path, record: dict | None = None) -> None:
        from safetensors.torch import save_file

        from odqa.io.atomic import atomic_write_text
        from odqa.models.loading import save_pretrained
        from odqa.models.tokenizer import save_tokenizer

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_pretrained(self.model.encoder, folder)
        save_tokenizer(self.tokenizer, folder)
        save_file(self.model.head_state(), str(folder / HEAD_FILE), metadata={"pooling": self.config.pooling})
        data = {"model": self.config.to_dict(), **(record or {})}
        atomic_write_text(folder / CONFIG_FILE, json.dumps(data, ensure_ascii=False, indent=2))

    def save_settings(self, folder: str | Path) -> None:
        """Rewrite only the model settings of a saved model (after `calibrate`), keeping its record."""
        from odqa.io.atomic import atomic_write_text
        from odqa.io.files import load_json

        path = Path(folder) / CONFIG_FILE
        data = load_json(path) | {"model": self.config.to_dict()}
        atomic_write_text(path, json.dumps(data, ensure_ascii=False, indent=2))

    @classmethod
    def load(
        cls, folder: str | Path, device: str | None = None, int8: bool = False, bf16: bool = False
    ) -> RelationClassifier:
        import torch
        from safetensors.torch import load_file

        from odqa.io.files import load_json
        from odqa.models.loading import load_encoder
        from odqa.models.tokenizer import load_tokenizer

        folder = Path(folder)
        if not (folder / CONFIG_FILE).exists():
            if not folder.exists():
                raise OdqaError(f"relation model folder not found: {folder}")
            raise OdqaError(f"{folder}: no {CONFIG_FILE}; is this a model from `odqa re train`?")
        config = RelationModelConfig.from_dict(load_json(folder / CONFIG_FILE).get("model") or {}).check()
        if not (folder / HEAD_FILE).exists():
            raise OdqaError(f"{folder}: no {HEAD_FILE}; the folder is incomplete")
        model = _module_class()(load_encoder(folder), config)
        head = load_file(str(folder / HEAD_FILE))
        try:
            model.load_state_dict(head, strict=False)
        except RuntimeError as e:
            first = str(e).splitlines()[0]
            raise OdqaError(f"{folder / HEAD_FILE} does not fit the model saved with it ({first})") from None
        missing = set(model.head_state()) - set(head)
        if missing:
            raise OdqaError(f"{folder / HEAD_FILE} lacks {len(missing)} head weights (e.g. {sorted(missing)[0]})")
        # the type table follows the settings (earlier saves hold all-true rows when trained unrestricted)
        model.allowed.copy_(torch.from_numpy(allowed_table(config.allowed, config.labels)))
        return cls(model, load_tokenizer(folder), config, device, int8=int8, bf16=bf16)
