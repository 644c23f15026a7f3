"""Span heads over an encoder's token states: the start/end scorer of a reader, chosen by name.

`linear` is transformers' own `AutoModelForQuestionAnswering` (one linear layer), saved and loaded
as a plain Hugging Face model. The others are the competition's heads — `cnn`, parallel 1D
convolutions over the token states (kernel sizes 1, 3 and 5, as in the 1st-place team's conv
head), and `bilstm`, a two-layer bidirectional LSTM — on any `AutoModel` encoder. A reader with
such a head is saved as the encoder's own Hugging Face folder (loadable with plain transformers)
plus `head.safetensors`, with the head's name and settings in `odqa_reader.json`.

A new head is a module `(hidden_size, **options) -> nn.Module` mapping (batch, tokens, hidden) to
(batch, tokens, 2), added to `HEADS`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from odqa.errors import OdqaError

HEAD_FILE = "head.safetensors"


def _conv_head(hidden: int, kernel_sizes=(1, 3, 5), channels: int | None = None, dropout: float = 0.1):
    import torch
    from torch import nn

    channels = channels or hidden

    class ConvHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.convs = nn.ModuleList(nn.Conv1d(hidden, channels, k, padding=k // 2) for k in kernel_sizes)
            self.dropout = nn.Dropout(dropout)
            self.out = nn.Linear(channels * len(kernel_sizes), 2)

        def forward(self, states):
            x = states.transpose(1, 2)  # (batch, hidden, tokens)
            features = torch.cat([torch.relu(conv(x)) for conv in self.convs], dim=1).transpose(1, 2)
            return self.out(self.dropout(features))

    return ConvHead()


def _bilstm_head(hidden: int, layers: int = 2, dropout: float = 0.1):
    from torch import nn

    class BiLSTMHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(
                hidden, hidden // 2, num_layers=layers, batch_first=True, bidirectional=True, dropout=dropout
            )
            self.out = nn.Linear(2 * (hidden // 2), 2)

        def forward(self, states):
            return self.out(self.lstm(states)[0])

    return BiLSTMHead()


# name → (hidden size, **options) → module (batch, tokens, hidden) → (batch, tokens, 2); None: transformers' own
HEADS: dict[str, Callable | None] = {"linear": None, "cnn": _conv_head, "bilstm": _bilstm_head}


@dataclass(frozen=True)
class SpanOutput:
    start_logits: object
    end_logits: object
    loss: object = None


def check_head(name: str) -> str:
    if name not in HEADS:
        raise OdqaError(f"unknown reader head {name!r}; choose one of {', '.join(HEADS)}")
    return name


def span_loss(start_logits, end_logits, start_positions, end_positions):
    """transformers' question-answering loss: the mean of the start and end cross-entropies,
    positions outside the window ignored."""
    from torch import nn

    width = start_logits.size(1)
    start_positions = start_positions.clamp(0, width)
    end_positions = end_positions.clamp(0, width)
    loss = nn.CrossEntropyLoss(ignore_index=width)
    return (loss(start_logits, start_positions) + loss(end_logits, end_positions)) / 2


def _module_class():
    import torch
    from torch import nn

    class SpanModel(nn.Module):
        """An encoder + a named span head, with the interface the reader and the training loop
        use of a transformers QA model: forward(**inputs) → start/end logits (+ loss with
        positions), get_input_embeddings, save_pretrained."""

        def __init__(self, encoder, head: str, options: dict | None = None):
            super().__init__()
            self.encoder = encoder
            self.head_name = check_head(head)
            self.head_options = dict(options or {})
            self.head = HEADS[head](encoder.config.hidden_size, **self.head_options)
            self.config = encoder.config

        def forward(
            self, input_ids, attention_mask=None, token_type_ids=None, start_positions=None, end_positions=None
        ):
            inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
            if token_type_ids is not None:
                inputs["token_type_ids"] = token_type_ids
            states = self.encoder(**inputs).last_hidden_state
            logits = self.head(states).float()
            start, end = logits[..., 0], logits[..., 1]
            if attention_mask is not None:  # padding never scores (it is masked in decoding too)
                start = start.masked_fill(attention_mask == 0, torch.finfo(start.dtype).min)
                end = end.masked_fill(attention_mask == 0, torch.finfo(end.dtype).min)
            loss = None
            if start_positions is not None and end_positions is not None:
                loss = span_loss(start, end, start_positions, end_positions)
            return SpanOutput(start, end, loss)

        def get_input_embeddings(self):
            return self.encoder.get_input_embeddings()

        def save_pretrained(self, path: str, safe_serialization: bool = True) -> None:
            from safetensors.torch import save_file

            from odqa.models.loading import save_pretrained as save_encoder

            save_encoder(self.encoder, path)
            state = {k: v.detach().contiguous().cpu() for k, v in self.head.state_dict().items()}
            save_file(state, str(Path(path) / HEAD_FILE), metadata={"head": self.head_name})

    return SpanModel


def saved_head(path: str | Path) -> dict | None:
    """The head of the reader saved in folder `path` ({"name", "options"}), None where it holds none
    (an encoder's folder, a hub id)."""
    import json

    from odqa.reader.model import READER_FILE

    settings = Path(path) / READER_FILE
    if not settings.is_file():
        return None
    try:
        head = json.loads(settings.read_text(encoding="utf-8")).get("head") or {"name": "linear"}
    except (ValueError, AttributeError):
        raise OdqaError(f"{settings} is not a reader's settings (JSON object); the folder is damaged") from None
    return {"name": head.get("name"), "options": head.get("options") or {}}


def build_span_model(encoder_path: str | Path, head: str, options: dict | None = None):
    """A reader model to train: transformers' QA model for `linear`, else the encoder + a head. A
    reader saved with the same head and settings goes on training with its own head (as a linear
    reader does with its QA layer); any other folder gets a new head."""
    from transformers import AutoModelForQuestionAnswering

    from odqa.models.loading import POOLER, load_encoder, load_pretrained

    if check_head(head) == "linear":
        return load_pretrained(AutoModelForQuestionAnswering, encoder_path, "a question-answering encoder", POOLER)
    saved = saved_head(encoder_path)
    if saved == {"name": head, "options": options or {}}:
        return load_span_model(encoder_path, saved)
    return _module_class()(load_encoder(encoder_path), head, options)


def load_span_model(path: str | Path, head: dict):
    """A saved reader with a custom head: its encoder folder + `head.safetensors`."""
    from safetensors.torch import load_file

    from odqa.models.loading import load_encoder

    name = head.get("name")
    if name not in HEADS:
        raise OdqaError(
            f"{path} was saved with the reader head {name!r}, which this odqa version does not know "
            f"(it knows {', '.join(HEADS)}); upgrade odqa"
        )
    weights = Path(path) / HEAD_FILE
    if not weights.exists():
        raise OdqaError(f"{path}: its reader head {name!r} has no {HEAD_FILE}; the folder is incomplete")
    model = _module_class()(load_encoder(path), name, head.get("options"))
    try:
        model.head.load_state_dict(load_file(str(weights)))
    except (RuntimeError, OSError) as e:
        first = str(e).strip().splitlines()[0]
        raise OdqaError(f"{weights} does not fit the {name!r} head saved with it ({first})") from None
    return model
