"""Which attention kernel a training step runs on a CPU under bf16 autocast.

transformers runs BERT-like encoders on PyTorch's fused attention (`sdpa`) by default. On a CPU under
bf16 autocast, with dropout on (as in training), that kernel is slow: transformers' plain ("eager")
attention trains multilingual-e5-small's reader 1.2x faster at 256 tokens and about 1.5x at 384-512
(`benchmarks/korean_model.py`'s speed stage; prediction, without dropout, is faster on the fused
kernel). So the training loop switches each encoder to eager attention while it trains
under bf16 on a CPU, and back for evaluation and saving. Both compute the same attention; only
rounding differs.
"""

from __future__ import annotations

from odqa.training.freezing import transformers_bases


class TrainingAttention:
    """`train()` switches the encoders in `model` that run the fused kernel to eager attention, when
    `enabled` (bf16 autocast on a CPU); `restore()` gives them their own back."""

    def __init__(self, model, enabled: bool):
        bases = transformers_bases(model) if enabled else []
        self.bases = [b for b in bases if getattr(b.config, "_attn_implementation", None) == "sdpa"]

    def train(self) -> None:
        for base in self.bases:
            base.set_attn_implementation("eager")

    def restore(self) -> None:
        for base in self.bases:
            base.set_attn_implementation("sdpa")
