"""Training a DPR-style bi-encoder: in-batch negatives plus BM25 hard negatives, with gradient
caching so that a large effective batch fits a small machine.

Each example is (question, positive passage = the gold context with its title); hard negatives
are the best BM25 passages of our sparse index that contain no gold answer and are not from the
gold article. The loss is cross-entropy over the similarities of each question to every passage
in the batch. With `cache_chunk`, the batch is encoded in chunks without gradients, the loss's
gradients with respect to the vectors are computed once, and each chunk is encoded again with
gradients and back-propagated with those cached gradients (Gao et al. 2021, "GradCache"), replaying
the random state so dropout matches."""

from __future__ import annotations

import logging

import numpy as np
from pydantic import Field

from odqa.errors import OdqaError
from odqa.io.squad import QAExample, read_qa_files
from odqa.retrieval.encoder import DenseEncoder, EncoderConfig, imported_defaults, pool_tokens
from odqa.training.loop import LoopSettings, sample_examples, seed_everything
from odqa.training.task import TrainingTask, run_task, training_record

log = logging.getLogger(__name__)


class DenseTrainingConfig(LoopSettings):
    what = "dense training config"

    model: str
    question_model: str | None = None  # separate question encoder (default: shared weights)
    train: list[str] = Field(default_factory=list)  # SQuAD-family files: (question, gold context)
    qrels: list[tuple[str, str]] = Field(default_factory=list)  # (topics, qrels) sets, e.g. MIRACL-ko train
    eval: str | None = None
    out: str
    hard_negatives_index: str | None = None  # a sparse index to mine BM25 hard negatives from (needed for qrels)
    hard_negatives: int = 1  # per question
    temperature: float = 1.0  # similarities are divided by it (use ~0.05 with cosine)
    cache_chunk: int | None = None  # gradient caching: encode at most this many texts at once
    max_train_examples: int | None = None
    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    batch_size: int = 32
    lr: float = 2e-5


def passage_text(example: QAExample) -> str:
    return f"{example.title}\n{example.context}" if example.title else example.context


def mine_hard_negatives(index_path: str, examples: list[QAExample], n: int, depth: int = 30) -> list[list[str]]:
    """Per example, the n best BM25 passages that hold no gold answer and are not from its article."""
    from odqa.metrics import has_answer, normalize_title
    from odqa.retrieval.sparse import SparseIndex

    index = SparseIndex.load(index_path)
    results = index.search([e.question for e in examples], k=depth, fetch=True)
    negatives = []
    for example, hits in zip(examples, results):
        gold_title = normalize_title(example.title)
        picked = [
            h.passage.text
            for h in hits
            if not has_answer(h.passage.text, example.answer_texts) and normalize_title(h.passage.title) != gold_title
        ][:n]
        negatives.append(picked)
    return negatives


def qrels_pairs(index_path: str, topics: str, qrels: str, n: int, depth: int = 100) -> list[tuple[str, str, list[str]]]:
    """(question, positive, negatives) from a qrels set judged at the article level: the positive
    is the best BM25 passage of a relevant article, negatives the best passages of other articles.
    Queries whose relevant articles BM25 does not reach within `depth` are skipped."""
    from odqa.io.questions import read_qrels, read_questions
    from odqa.retrieval.sparse import SparseIndex

    index = SparseIndex.load(index_path)
    relevant = read_qrels(qrels)
    questions = [q for q in read_questions(topics) if relevant.get(q.id)]
    pairs = []
    for question, hits in zip(questions, index.search([q.text for q in questions], k=depth, fetch=True)):
        gold = relevant[question.id]
        judged = [h for h in hits if any(s.doc_id in gold for s in h.passage.sources)]
        if judged:
            others = [h.passage.text for h in hits if not any(s.doc_id in gold for s in h.passage.sources)][:n]
            pairs.append((question.text, judged[0].passage.text, others))
    return pairs


def bi_encoder(passage_model, question_model, pooling: str):
    """Question + passage encoders as one torch module for the training loop."""
    from torch import nn

    class BiEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.passage_model = passage_model
            if question_model is not None:  # shared weights are registered once (checkpoints stay clean)
                self.separate_question_model = question_model

        @property
        def question_model(self):
            return getattr(self, "separate_question_model", None) or self.passage_model

        def encode(self, inputs: dict, kind: str):
            model = self.question_model if kind == "query" else self.passage_model
            return pool_tokens(model(**inputs).last_hidden_state, inputs["attention_mask"], pooling)

        def forward(self, queries: dict | None = None, passages: dict | None = None):
            """(question vectors, passage vectors) of those given, in one pass through the module, so
            a DDP wrapper sees it and synchronises the gradients."""
            return (
                None if queries is None else self.encode(queries, "query"),
                None if passages is None else self.encode(passages, "passage"),
            )

    return BiEncoder()


def gather_across_processes(local, accelerator):
    """Every process's rows in rank order — this process's own with their gradients, the others'
    detached — and each process's row count."""
    import torch

    sizes = accelerator.gather(torch.tensor([len(local)], device=local.device)).tolist()
    padded = local.new_zeros((max(sizes), *local.shape[1:]))
    padded[: len(local)] = local.detach()
    everyone = accelerator.gather(padded).view(len(sizes), max(sizes), *local.shape[1:])
    rank = accelerator.process_index
    return torch.cat([local if r == rank else everyone[r, :n] for r, n in enumerate(sizes)]), sizes


def _chunks(inputs: dict, size: int) -> list[dict]:
    n = len(inputs["input_ids"])
    return [{k: v[lo : lo + size] for k, v in inputs.items()} for lo in range(0, n, size)]


def encode(model, inputs: dict, kind: str):
    """One side's vectors through the (possibly wrapped) bi-encoder."""
    return model(queries=inputs)[0] if kind == "query" else model(passages=inputs)[1]


def average_gradients(model, processes: int) -> None:
    """Average every gradient over the processes (what DDP does after a synchronised backward)."""
    import torch.distributed as dist

    for param in model.parameters():
        if param.requires_grad and param.grad is not None:
            dist.all_reduce(param.grad)
            param.grad /= processes


def contrastive_step(config: DenseTrainingConfig):
    """The loop's step: in-batch + hard-negative cross-entropy, with or without gradient caching."""
    import torch
    import torch.nn.functional as F

    cosine = config.encoder.similarity == "cosine"

    def loss_of(q, p, accelerator):
        """(loss to back-propagate, loss to report). In-batch negatives over every process's batch:
        each question scores all passages of all processes (DPR's effective batch; positive i is
        passage i of the same process). Every process computes the same global loss but reaches
        only its own rows, so it is scaled by the process count: DDP's average of the processes'
        gradients is then exactly the global loss's gradient."""
        if cosine:
            q, p = F.normalize(q, dim=-1), F.normalize(p, dim=-1)
        if accelerator.num_processes == 1:
            loss = F.cross_entropy((q @ p.T / config.temperature).float(), torch.arange(len(q), device=q.device))
            return loss, loss.detach()
        q_all, q_sizes = gather_across_processes(q, accelerator)
        p_all, p_sizes = gather_across_processes(p, accelerator)
        starts = [sum(p_sizes[:r]) for r in range(len(p_sizes))]
        labels = torch.cat([torch.arange(n, device=q.device) + start for n, start in zip(q_sizes, starts)])
        loss = F.cross_entropy((q_all @ p_all.T / config.temperature).float(), labels)
        return loss * accelerator.num_processes, loss.detach()

    def step(model, batch, accelerator):
        queries = {k[2:]: v for k, v in batch.items() if k.startswith("q_")}
        passages = {k[2:]: v for k, v in batch.items() if k.startswith("p_")}
        if not config.cache_chunk:
            loss, reported = loss_of(*model(queries, passages), accelerator)
            accelerator.backward(loss)
            return reported
        plan = [(c, "query") for c in _chunks(queries, config.cache_chunk)] + [
            (c, "passage") for c in _chunks(passages, config.cache_chunk)
        ]
        states, vectors = [], []
        with torch.no_grad():
            for inputs, kind in plan:
                states.append(
                    (torch.get_rng_state(), torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)
                )
                vectors.append(encode(model, inputs, kind))
        n_query_chunks = len(_chunks(queries, config.cache_chunk))
        q = torch.cat(vectors[:n_query_chunks]).detach().requires_grad_()
        p = torch.cat(vectors[n_query_chunks:]).detach().requires_grad_()
        loss, reported = loss_of(q, p, accelerator)
        loss.backward()
        grads = list(q.grad.split([len(v) for v in vectors[:n_query_chunks]])) + list(
            p.grad.split([len(v) for v in vectors[n_query_chunks:]])
        )
        # Chunks accumulate gradients locally; processes average them once, after the last chunk
        # (a chunk of passages alone leaves a separate question encoder unused, which DDP's own
        # synchronisation would wait for).
        with accelerator.no_sync(model):
            for (inputs, kind), (cpu_state, cuda_state), grad in zip(plan, states, grads):
                torch.set_rng_state(cpu_state)
                if cuda_state is not None:
                    torch.cuda.set_rng_state_all(cuda_state)
                accelerator.backward((encode(model, inputs, kind) * grad).sum())
        if accelerator.num_processes > 1 and accelerator.sync_gradients:
            average_gradients(model, accelerator.num_processes)
        return reported

    return step


def train_dense(config: DenseTrainingConfig, quiet: bool = False, resume: bool = True) -> dict:
    from transformers import AutoModel

    from odqa.models.loading import POOLER, check_model_dir, load_pretrained
    from odqa.models.tokenizer import load_tokenizer

    check_model_dir(config.model)
    # an imported model (e.g. multilingual-e5-small) brings the pooling and prefixes it was trained
    # with; the settings the config gives win
    encoder = imported_defaults(config.model) | config.encoder.model_dump(exclude_unset=True)
    config = config.model_copy(update={"encoder": EncoderConfig.from_dict(encoder)})
    if not config.train and not config.qrels:
        raise OdqaError("nothing to train on: give SQuAD-format --train files and/or --qrels sets")
    if config.qrels and not config.hard_negatives_index:
        raise OdqaError(
            "training from qrels needs --hard-negatives INDEX: positives are found in that index's passages"
        )
    examples = read_qa_files(config.train, require_answers=True) if config.train else []
    examples = sample_examples(examples, config.max_train_examples, config.seed)
    if config.hard_negatives and not config.hard_negatives_index:
        log.warning("no --hard-negatives index: training with in-batch negatives only")
    mined = (
        mine_hard_negatives(config.hard_negatives_index, examples, config.hard_negatives)
        if config.hard_negatives_index and config.hard_negatives and examples
        else [[] for _ in examples]
    )
    pairs = [(e.question, passage_text(e), negatives) for e, negatives in zip(examples, mined)]
    for topics, qrels in config.qrels:
        pairs += qrels_pairs(config.hard_negatives_index, topics, qrels, config.hard_negatives)
    if not pairs:
        raise OdqaError("no training pairs: no qrels query reached a relevant article in the index")
    seed_everything(config.seed)
    tokenizer = load_tokenizer(config.model)
    passage_model = load_pretrained(AutoModel, config.model, "an encoder", POOLER)
    question_model = None
    if config.question_model:
        question_model = load_pretrained(AutoModel, config.question_model, "a question encoder", POOLER)
    module = bi_encoder(passage_model, question_model, config.encoder.pooling)

    def collate(indices):
        questions = [config.encoder.query_prefix + pairs[i][0] for i in indices]
        passages = [
            config.encoder.passage_prefix + text
            for text in [pairs[i][1] for i in indices] + [text for i in indices for text in pairs[i][2]]
        ]
        q = tokenizer(
            questions, truncation=True, max_length=config.encoder.query_max_length, padding=True, return_tensors="pt"
        )
        p = tokenizer(
            passages, truncation=True, max_length=config.encoder.passage_max_length, padding=True, return_tensors="pt"
        )
        return {**{f"q_{k}": v for k, v in q.items()}, **{f"p_{k}": v for k, v in p.items()}}

    record = training_record(
        config,
        {"train": config.train, "qrels": [list(pair) for pair in config.qrels]},
        {"pairs": len(pairs), "with_hard_negatives": sum(1 for _, _, n in pairs if n)},
    )
    eval_examples = read_qa_files([config.eval]) if config.eval else []

    def encoder_of(trained) -> DenseEncoder:
        device = str(next(trained.parameters()).device)
        return DenseEncoder(trained.passage_model, tokenizer, config.encoder, trained.question_model, device=device)

    task = TrainingTask(
        module,
        np.array([len(positive) for _, positive, _ in pairs], dtype=np.int64),
        collate,
        lambda trained, folder, record: encoder_of(trained).save(folder, record),
        record,
        step=contrastive_step(config),
        evaluate=(lambda trained: evaluate_dense(encoder_of(trained), eval_examples)) if eval_examples else None,
        score_key="top20",
        unused_parameters=True,  # the encoder's pooler (pooling is over token states)
    )
    return run_task(task, config, config.out, quiet, resume)


def evaluate_dense(encoder: DenseEncoder, examples: list[QAExample], ks=(1, 5, 20)) -> dict:
    """Top-k accuracy of finding each question's own context among all the set's contexts."""
    contexts = list(dict.fromkeys(passage_text(e) for e in examples))
    position = {text: i for i, text in enumerate(contexts)}
    if not contexts:
        raise OdqaError("no evaluation examples")
    p = encoder.encode(contexts, "passage")
    q = encoder.encode([e.question for e in examples], "query")
    ranks = np.argsort(-(q @ p.T), axis=1)
    gold = np.array([position[passage_text(e)] for e in examples])
    first = (ranks == gold[:, None]).argmax(axis=1) + 1
    return {f"top{k}": float(100 * (first <= k).mean()) for k in ks} | {"contexts": len(contexts)}
