"""Run by tests/test_distributed.py under `torchrun --nproc_per_node 2` (gloo, CPU): one trainer,
a few steps on tiny data. The shared loop refuses to finish when the two processes' copies of the
model differ, so exit status 0 means the trainer's gradients were synchronised."""

import json
import sys

from odqa.training.dense import DenseTrainingConfig, train_dense
from odqa.training.loop import close_processes
from odqa.training.mlm import MlmConfig, pretrain_mlm
from odqa.training.reader import ReaderTrainingConfig, train_reader
from odqa.training.rerank import RerankerTrainingConfig, train_reranker

kind, out = sys.argv[1], sys.argv[2]
paths = json.loads(sys.argv[3])  # {"model", "qa", "index", "corpus", "tokenizer"}
common = {"out": out, "max_steps": 3, "batch_size": 4, "lr": 1e-3, "warmup_ratio": 0.0, "seed": 1}
if kind == "reader":
    train_reader(
        ReaderTrainingConfig(
            model=paths["model"],
            train=[paths["qa"]],
            reader={"max_length": 96, "stride": 32, "max_question_tokens": 32},
            **common,
        ),
        quiet=True,
        resume=False,
    )
elif kind.startswith("dense"):
    options = {
        "dense": {},
        "dense-cached": {"cache_chunk": 2},
        "dense-two-encoders": {"question_model": paths["model"], "cache_chunk": 3},
    }[kind]
    config = DenseTrainingConfig(
        model=paths["model"],
        train=[paths["qa"]],
        temperature=0.5,
        encoder={"pooling": "mean", "passage_max_length": 48},
        **options,
        **common,
    )
    train_dense(config, quiet=True, resume=False)
elif kind == "rerank":
    config = RerankerTrainingConfig(
        model=paths["model"],
        train=[paths["qa"]],
        index=paths["index"],
        negatives=2,
        depth=6,
        reranker={"max_length": 64},
        **common,
    )
    train_reranker(config, quiet=True, resume=False)
elif kind == "mlm":
    pretrain_mlm(
        MlmConfig(tokenizer=paths["tokenizer"], corpus=[paths["corpus"]], size="tiny", max_length=16, **common),
        quiet=True,
        resume=False,
    )
else:
    raise SystemExit(f"unknown trainer {kind}")
print(f"{kind}: done", flush=True)
close_processes()
