"""A dense index cut into shards (`odqa index-dense --index-shards N`), searched like a sharded
sparse index: one Ray actor per shard, queries fanned out, top k merged exactly.

The passages are cut as `odqa index --shards N` cuts them (contiguous runs that never split a
document) and encoded by a Ray Data job in the chunks the one-machine build encodes (from the
first passage on), so every vector is the one the embedded dense index holds; each shard is a
normal odqa dense index over its run. The queries are encoded once, by the process that fans them
out, and the shards only search vectors (their actors load no encoder). With exact (`flat`)
shards, a sharded search returns the same ids and scores as the embedded index."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from odqa.distributed.sharded import FORMAT, FORMAT_VERSION, document_numbers, shard_bounds
from odqa.errors import OdqaError


def build_sharded_dense_index(
    corpus: str | Path,
    out: str | Path,
    shards: int,
    encoder_path: str,
    corpus_config=None,
    faiss: str = "flat",
    limit: int | None = None,
    device: str | None = None,
    quiet: bool = False,
    address: str | None = None,
    workers: int | None = None,
    precision: str = "fp32",
) -> tuple[dict, dict]:
    """Encode `corpus` on the Ray cluster and save it as `shards` dense shard indexes under `out`
    (replaced atomically); the vectors are kept under `OUT.shards/` until then, so a killed run
    resumes. `precision="bf16"`: encoded (and later queried) with bfloat16 weights. Returns
    (manifest, timings)."""
    from odqa import __version__
    from odqa.corpus import CorpusConfig
    from odqa.io.atomic import atomic_dir
    from odqa.retrieval.build import encode_in_parts, read_passages
    from odqa.retrieval.dense import DenseIndex, check_memory
    from odqa.retrieval.encoder import DenseEncoder

    timings: dict[str, float] = {}
    start = time.perf_counter()
    passages, stats, info, _ = read_passages(corpus, corpus_config or CorpusConfig(), limit, quiet)
    if not passages:
        raise OdqaError(f"{corpus} holds no text to index")
    cuts = shard_bounds(document_numbers(passages), shards)
    timings["passages_s"] = time.perf_counter() - start
    start = time.perf_counter()
    encoder = DenseEncoder.load(encoder_path, device=device, precision=precision)
    check_memory(len(passages), encoder.dim, faiss)
    vectors = encode_in_parts(
        passages,
        stats["fingerprint"],
        out,
        encoder_path,
        encoder,
        quiet,
        ray=True,
        ray_address=address,
        workers=workers,
        device=device,
    )
    timings["encoding_s"] = time.perf_counter() - start
    start = time.perf_counter()
    spans = list(zip(cuts[:-1].tolist(), cuts[1:].tolist()))
    with atomic_dir(out) as tmp:
        for i, (a, b) in enumerate(spans):
            shard = DenseIndex.build(passages[a:b], encoder, faiss, str(encoder_path), info, vectors=vectors[a:b])
            shard.manifest["shard"] = {"index": i, "shards": shards, "first_passage": a, "passages": b - a}
            shard.save(tmp / f"shard-{i:03d}")
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "odqa_version": __version__,
            "kind": "dense",
            "encoder": {"path": str(encoder_path), **encoder.config.to_dict(), "precision": encoder.precision},
            "faiss": faiss,
            "corpus": info,
            "counts": {"passages": len(passages), "dim": int(encoder.dim), "shards": shards},
            "shards": [
                {"path": f"shard-{i:03d}", "first_passage": a, "passages": b - a} for i, (a, b) in enumerate(spans)
            ],
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    shutil.rmtree(Path(f"{out}.shards"), ignore_errors=True)
    timings["shards_s"] = time.perf_counter() - start
    return manifest, timings


def query_encoder(manifest: dict, path: Path, device: str | None = None):
    """The encoder a dense sharded index names, checked against the settings it was built with."""
    from odqa.retrieval.encoder import built_encoder, check_built_with

    built = manifest.get("encoder")
    if not isinstance(built, dict) or not built.get("path"):
        raise OdqaError(f"sharded index {path}: its manifest does not name its encoder; rebuild it")
    encoder = built_encoder(built, device)
    check_built_with(encoder, built, manifest["counts"]["dim"], f"sharded index {path}")
    return encoder
