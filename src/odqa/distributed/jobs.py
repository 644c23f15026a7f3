"""Batch jobs as Ray Data pipelines: answering a question file (`odqa predict --ray`) and encoding
a corpus for a dense index (`odqa index-dense --ray`), each a `map_batches` over model actors — one
per core, or per GPU — that load their model once and stream results back to the driver.

The driver keeps what makes the single-machine commands resumable: predict appends each batch's
answers to `partial.jsonl` as it arrives, encoding saves each chunk's vectors as it arrives, so a
killed driver resumes where it stopped. A node that dies takes its actors with it; Ray Data
restarts them elsewhere and retries their batches, so nothing is lost and nothing hangs.

The unit of work is exactly the single-machine command's unit — a batch of questions, a chunk of a
part's passages — so the results are the same numbers, not merely close ones."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from odqa.errors import OdqaError


def _data(address: str | None):
    """Ray Data, connected (see `odqa.distributed.sharded.connect`), with its own bars and logs
    quiet: the command shows one progress bar of its own."""
    from odqa.distributed.sharded import connect

    ray = connect(address)
    try:
        import ray.data
    except ImportError as e:
        raise OdqaError(f"Ray Data is missing a library ({e.name}): pip install 'odqa[ray]'") from None
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    if hasattr(context, "print_on_execution_start"):
        context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its notices (bars off, ...) are nothing to act on
    return ray, ray.data


def _worker_count(ray, workers: int | None, per_worker: float, gpu: bool) -> int:
    """Actors to start: as asked, or as many as the cluster's CPUs (or GPUs) hold."""
    if workers is not None:
        if workers < 1:
            raise OdqaError(f"--workers must be at least 1, got {workers}")
        return workers
    total = ray.cluster_resources().get("GPU" if gpu else "CPU", 0)
    return max(1, int(total // per_worker))


def _threads(cpus: float) -> None:
    """An actor's torch uses the cores Ray gave it (not every core of its node)."""
    import torch

    torch.set_num_threads(max(1, int(cpus)))


def _gpu(device: str | None) -> bool:
    return bool(device) and str(device).startswith("cuda")


def _stream(rows: list[dict], worker, args: tuple, address, workers, cpus: float, device, job: str) -> Iterator[dict]:
    """`rows` through a Ray Data `map_batches` over `worker` actors (one row per call), each
    output batch yielded as it arrives; a failed job is one `OdqaError` naming it."""
    ray, data = _data(address)
    gpu = _gpu(device)
    actors = min(_worker_count(ray, workers, cpus, gpu), len(rows))
    mapped = data.from_items(rows, override_num_blocks=len(rows)).map_batches(
        worker,
        batch_size=1,
        fn_constructor_args=args,
        compute=data.ActorPoolStrategy(size=actors),
        num_cpus=0 if gpu else cpus,
        num_gpus=1 if gpu else 0,
    )
    try:
        yield from mapped.iter_batches(batch_size=1, batch_format="numpy")
    except ray.exceptions.RayError as e:
        raise OdqaError(f"the Ray {job} job failed: {_first_line(e)}; run again to resume") from None


# --- odqa predict --ray -----------------------------------------------------------------------


class PipelineWorker:
    """A Ray Data actor: the pipeline built once from its config; each row is one batch of
    questions (ids and texts as JSON), answered with one `ask_batch` as `odqa predict` answers it."""

    def __init__(self, config: dict, cpus: float):
        from odqa.pipeline import Pipeline, PipelineConfig

        _threads(cpus)
        self.pipeline = Pipeline(PipelineConfig.from_dict(config)).warm_up()

    def __call__(self, rows: dict) -> dict:
        import ray

        from odqa.e2e import _record
        from odqa.io.questions import Question

        answered = []
        for text in rows["batch"]:
            batch = [Question(id=q["id"], text=q["text"]) for q in json.loads(text)]
            results = self.pipeline.ask_batch([q.text for q in batch])
            answered.append(json.dumps([_record(q, r) for q, r in zip(batch, results)], ensure_ascii=False))
        node = ray.get_runtime_context().get_node_id()
        return {"records": np.asarray(answered, dtype=object), "node": np.asarray([node] * len(answered), dtype=object)}


def _absolute(config: dict) -> dict:
    """The config with every local path made absolute: actors on other nodes do not share this
    process's working directory (a shared file system is assumed, as for sharded indexes)."""

    def resolve(value):
        if isinstance(value, list):
            return [resolve(v) for v in value]
        return str(Path(value).resolve()) if isinstance(value, str) and Path(value).exists() else value

    return {**config, **{key: resolve(config.get(key)) for key in ("index", "reader", "rerank", "rescore")}}


def answer_on_ray(
    pipeline,
    batches: Sequence[Sequence],
    address: str | None = None,
    workers: int | None = None,
    cpus: float = 1.0,
    on_batch: Callable[[str], None] | None = None,
) -> Iterator[list[dict]]:
    """`odqa.e2e.predict_file`'s `answer` on a Ray cluster: every batch of questions a row of a
    Ray Data pipeline through `workers` pipeline actors (`cpus` cores each, or one GPU each when
    the pipeline's device is CUDA); each batch's records are yielded as soon as it is answered
    (and `on_batch` told the id of the node that answered it)."""
    if not batches:
        return
    rows = [
        {"batch": json.dumps([{"id": q.id, "text": q.text} for q in batch], ensure_ascii=False)} for batch in batches
    ]
    args = (_absolute(pipeline.config.to_dict()), cpus)
    for out in _stream(rows, PipelineWorker, args, address, workers, cpus, pipeline.config.device, "prediction"):
        for text, node in zip(out["records"], out["node"]):
            if on_batch is not None:
                on_batch(str(node))
            yield json.loads(text)


# --- odqa index-dense --ray -------------------------------------------------------------------


class EncoderWorker:
    """A Ray Data actor: the dense encoder loaded once; each row is one chunk of passages, encoded
    as `DenseEncoder.encode` encodes a chunk (the same batches, so the same vectors)."""

    def __init__(self, encoder_path: str, device: str | None, cpus: float, precision: str = "fp32"):
        from odqa.retrieval.encoder import DenseEncoder

        _threads(cpus)
        self.encoder = DenseEncoder.load(encoder_path, device=device, precision=precision)

    def __call__(self, rows: dict) -> dict:
        vectors = [self.encoder.encode(json.loads(texts), "passage").tobytes() for texts in rows["texts"]]
        return {"name": rows["name"], "vectors": np.asarray(vectors, dtype=object)}


def encode_on_ray(
    texts: Sequence[str],
    chunks: Sequence[tuple[str, int, int]],
    folder: Path,
    encoder_path: str,
    dim: int,
    device: str | None = None,
    address: str | None = None,
    workers: int | None = None,
    cpus: float = 1.0,
    on_chunk=None,
    precision: str = "fp32",
) -> None:
    """Encode the `chunks` (file name, first, end) of `texts` on a Ray cluster, saving each
    chunk's vectors to `folder/name` (atomically) as it arrives; chunks already saved are skipped,
    so a killed run resumes."""
    todo = [(name, lo, hi) for name, lo, hi in chunks if not (folder / name).exists()]
    if not todo:
        return
    rows = [{"name": name, "texts": json.dumps(list(texts[lo:hi]), ensure_ascii=False)} for name, lo, hi in todo]
    args = (str(encoder_path), device, cpus, precision)
    for out in _stream(rows, EncoderWorker, args, address, workers, cpus, device, "encoding"):
        for name, raw in zip(out["name"], out["vectors"]):
            vectors = np.frombuffer(raw, dtype=np.float32).reshape(-1, dim)
            tmp = folder / f".{name}.tmp.npy"
            np.save(tmp, vectors)
            os.replace(tmp, folder / name)
            if on_chunk is not None:
                on_chunk(len(vectors))


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
