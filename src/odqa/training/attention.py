"""Which attention kernel a training step runs on a CPU under bf16 autocast.

transformers runs BERT-like encoders on PyTorch's fused attention (`sdpa`) by default. On a CPU under
bf16 autocast its backward pass is slow for short sequences: transformers' plain ("eager") attention
trains multilingual-e5-small's reader about 1.2x faster at 256-384 tokens, and falls behind from
about 512 (`benchmarks/korean_model.py`'s speed stage; prediction stays faster on the fused kernel at
every length). So the training loop switches each encoder to eager attention for batches up to
`EAGER_MAX_TOKENS` long, and back to the fused kernel for longer batches and for evaluation. Both
compute the same attention; only rounding differs.
"""

from __future__ import annotations

from odqa.training.freezing import transformers_bases

EAGER_MAX_TOKENS = 448  # the longest batch that trains faster on eager attention (measured between 384 and 512)


def batch_tokens(batch: dict) -> int:
    """The longest sequence in a batch: the last dimension of its token tensors (2-D or more)."""
    return max((v.shape[-1] for v in batch.values() if getattr(v, "ndim", 0) >= 2), default=0)


class TrainingAttention:
    """Switches the encoders in `model` between eager and fused attention batch by batch, when
    `enabled` (bf16 autocast on a CPU); `restore()` puts back what each encoder had."""

    def __init__(self, model, enabled: bool):
        bases = transformers_bases(model) if enabled else []
        self.bases = [b for b in bases if getattr(b.config, "_attn_implementation", None) == "sdpa"]
        self.eager = False

    def fit(self, batch: dict) -> None:
        self._use(bool(self.bases) and batch_tokens(batch) <= EAGER_MAX_TOKENS)

    def restore(self) -> None:
        self._use(False)

    def _use(self, eager: bool) -> None:
        if eager != self.eager:
            for base in self.bases:
                base.set_attn_implementation("eager" if eager else "sdpa")
            self.eager = eager
