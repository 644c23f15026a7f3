"""Training a cross-encoder reranker: for each question, its positive passage and BM25 hard
negatives are scored together and the positive is pushed to the top (listwise cross-entropy).

The positive is the best BM25 passage of the gold article that holds a gold answer (what the
reranker will see at search time), or the gold context itself when retrieval finds none."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from pydantic import Field

from odqa.errors import OdqaError
from odqa.io.squad import QAExample, read_qa_files
from odqa.retrieval.rerank import Reranker, RerankerConfig
from odqa.training.loop import LoopSettings, sample_examples, seed_everything
from odqa.training.task import TrainingTask, run_task, training_record

log = logging.getLogger(__name__)


class RerankerTrainingConfig(LoopSettings):
    what = "reranker training config"

    model: str
    train: list[str]
    index: str  # the sparse index that gives positives and hard negatives
    out: str
    negatives: int = 7  # per question
    depth: int = 30  # BM25 candidates looked at per question
    max_train_examples: int | None = None
    reranker: RerankerConfig = Field(default_factory=RerankerConfig)
    batch_size: int = 4  # questions per batch (each with 1 + negatives passages)
    lr: float = 3e-5


def mine_groups(
    index_path: str, examples: list[QAExample], negatives: int, depth: int, seed: int = 42
) -> list[tuple[str, list[str]]]:
    """(question, [positive, negative, …]) per example. Negatives are the best BM25 passages that
    hold no gold answer and are not from the gold article, topped up with random such passages
    when BM25 finds too few (short questions, small corpora)."""
    import random

    from odqa.metrics import has_answer, normalize_title
    from odqa.retrieval.sparse import SparseIndex

    index = SparseIndex.load(index_path)
    rng = random.Random(seed)
    groups = []
    for example, hits in zip(examples, index.search([e.question for e in examples], k=depth, fetch=True)):
        gold_title = normalize_title(example.title)
        answers = example.answer_texts

        def usable(passage) -> bool:
            return not has_answer(passage.text, answers) and normalize_title(passage.title) != gold_title

        positive = next(
            (
                h.passage.text
                for h in hits
                if has_answer(h.passage.text, answers) and normalize_title(h.passage.title) == gold_title
            ),
            None,
        )
        if positive is None:
            positive = f"{example.title}\n{example.context}" if example.title else example.context
        picked = [h.passage.text for h in hits if usable(h.passage)][:negatives]
        for _ in range(20 * negatives):
            if len(picked) >= negatives:
                break
            passage = index.passages[rng.randrange(index.n_passages)]
            if usable(passage) and passage.text not in picked:
                picked.append(passage.text)
        if len(picked) == negatives:
            groups.append((example.question, [positive, *picked]))
    return groups


def listwise_step(group_size: int):
    import torch
    import torch.nn.functional as F

    def step(model, batch, accelerator):
        logits = model(**batch).logits.view(-1, group_size)
        loss = F.cross_entropy(logits.float(), torch.zeros(len(logits), dtype=torch.long, device=logits.device))
        accelerator.backward(loss)
        return loss.detach()

    return step


def train_reranker(config: RerankerTrainingConfig, quiet: bool = False, resume: bool = True) -> dict:
    from transformers import AutoModelForSequenceClassification

    from odqa.models.loading import check_model_dir, load_pretrained
    from odqa.models.tokenizer import load_tokenizer

    check_model_dir(config.model)
    examples = read_qa_files(config.train, require_answers=True)
    examples = sample_examples(examples, config.max_train_examples, config.seed)
    groups = mine_groups(config.index, examples, config.negatives, config.depth)
    if not groups:
        raise OdqaError(f"no training question has {config.negatives} BM25 negatives in {config.index}")
    seed_everything(config.seed)
    tokenizer = load_tokenizer(config.model)
    model = load_pretrained(AutoModelForSequenceClassification, config.model, "an encoder", num_labels=1)
    group_size = config.negatives + 1

    def collate(indices):
        firsts = [groups[i][0] for i in indices for _ in range(group_size)]
        seconds = [text for i in indices for text in groups[i][1]]
        return dict(
            tokenizer(
                firsts,
                seconds,
                truncation="only_second",
                max_length=config.reranker.max_length,
                padding=True,
                return_tensors="pt",
            )
        )

    record = training_record(config, {"train": config.train}, {"groups": len(groups)})

    def save(trained, folder: Path, record: dict) -> None:
        device = str(next(trained.parameters()).device)
        Reranker(trained, tokenizer, config.reranker, device=device).save(folder, record)

    lengths = np.array([sum(len(t) for t in passages) for _, passages in groups], dtype=np.int64)
    task = TrainingTask(model, lengths, collate, save, record, step=listwise_step(group_size))
    return run_task(task, config, config.out, quiet, resume)
