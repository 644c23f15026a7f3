"""Vocabulary trimming: keep the pieces a corpus uses, cut the embedding matrix to match.

multilingual-e5-small spends 96 M of its 117.5 M parameters on 250k embedding rows, most of them
for languages a Korean reader never sees; AdamW over them dominates a CPU training step. Trimming
keeps the pieces that the model's own tokenizer produces on the given texts, plus every special
token, every single-character piece (so no character the full vocabulary covers becomes unknown)
and every digit piece. Because the kept set contains the best segmentation of every scanned text,
the Unigram tokenizer over the kept pieces segments those texts exactly as before (offsets too);
other text can only fall back to shorter kept pieces. Ids are renumbered in their old order.
"""

from __future__ import annotations

import itertools
import json
import logging
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from odqa.errors import OdqaError
from odqa.io.atomic import atomic_dir

log = logging.getLogger(__name__)

MODEL_FILE = "odqa_model.json"
COPIED = ("tokenizer_config.json", "special_tokens_map.json", "odqa_reader.json", "generation_config.json")


def corpus_texts(paths: Iterable[str | Path], max_documents: int | None = None) -> Iterator[str]:
    """Questions and contexts of SQuAD-family files, sentences of KLUE-RE files, titles and
    texts of document files."""
    from odqa.io.documents import read_documents
    from odqa.io.files import base_suffix, load_json
    from odqa.relation.data import relation_sentences

    for path in paths:
        path = Path(path)
        if not path.exists():
            raise OdqaError(f"corpus file not found: {path}")
        if base_suffix(path) == ".json":
            data = load_json(path)
            if isinstance(data, dict) and isinstance(data.get("data"), list):
                for article in data["data"]:
                    for paragraph in article.get("paragraphs") or []:
                        yield str(paragraph.get("context") or "")
                        for qa in paragraph.get("qas") or []:
                            yield str(qa.get("question") or "")
                continue
        sentences = relation_sentences(path)
        if sentences is not None:  # relation-extraction examples
            yield from itertools.islice(sentences, max_documents)
            continue
        for document in itertools.islice(read_documents(path), max_documents):
            yield f"{document.title}\n{document.text}" if document.title else document.text


def _chunks(texts: Iterable[str], size: int = 2048) -> Iterator[list[str]]:
    chunk: list[str] = []
    for text in texts:
        chunk.append(text)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def piece_counts(tokenizer, texts: Iterable[str]) -> np.ndarray:
    """How often each piece id occurs when `tokenizer` (a `tokenizers.Tokenizer`) tokenizes `texts`."""
    counts = np.zeros(tokenizer.get_vocab_size(with_added_tokens=True), dtype=np.int64)
    for chunk in _chunks(texts):
        ids = [np.asarray(e.ids, dtype=np.int64) for e in tokenizer.encode_batch(chunk, add_special_tokens=False)]
        if ids:
            counts += np.bincount(np.concatenate(ids), minlength=len(counts))[: len(counts)]
    return counts


def pieces_to_keep(spec: dict, counts: np.ndarray, min_count: int = 1) -> np.ndarray:
    """Old ids to keep, ascending: used pieces, specials, single characters and digit pieces."""
    vocab = spec["model"]["vocab"]
    keep = counts[: len(vocab)] >= min_count
    for i, (piece, _score) in enumerate(vocab):
        bare = piece.lstrip("▁")
        if len(bare) <= 1 or bare.isdigit():
            keep[i] = True
    for token in spec.get("added_tokens", []):
        if token["id"] < len(keep):
            keep[token["id"]] = True
    keep[spec["model"]["unk_id"]] = True
    return np.flatnonzero(keep)


def trimmed_tokenizer_spec(spec: dict, kept: np.ndarray) -> dict:
    """The tokenizer.json of a Unigram tokenizer restricted to `kept` old ids (renumbered in order)."""
    new_id = {int(old): new for new, old in enumerate(kept)}
    spec = json.loads(json.dumps(spec))
    model = spec["model"]
    model["vocab"] = [model["vocab"][int(old)] for old in kept]
    model["unk_id"] = new_id[model["unk_id"]]
    for token in spec.get("added_tokens", []):
        token["id"] = new_id[token["id"]]
    post = spec.get("post_processor") or {}
    for processor in [post, *post.get("processors", [])]:
        for special in (processor.get("special_tokens") or {}).values():
            special["ids"] = [new_id[i] for i in special["ids"]]
        for key in ("cls", "sep"):  # RobertaProcessing / BertProcessing: [token, id]
            if isinstance(processor.get(key), list):
                processor[key][1] = new_id[processor[key][1]]
    return spec


def trim_model(
    model_dir: str | Path,
    out: str | Path,
    corpus: list[str | Path],
    max_documents: int | None = None,
    min_count: int = 1,
    overwrite: bool = False,
) -> dict:
    """Write a copy of the model folder `model_dir` whose vocabulary holds only what `corpus` uses."""
    from safetensors.numpy import load_file, save_file
    from tokenizers import Tokenizer

    model_dir, out = Path(model_dir), Path(out)
    if not (model_dir / "tokenizer.json").exists() or not (model_dir / "config.json").exists():
        raise OdqaError(f"{model_dir}: not a model folder with config.json and tokenizer.json")
    if not (model_dir / "model.safetensors").exists():
        raise OdqaError(
            f"{model_dir}: no model.safetensors (sharded or pickled weights are not supported for trimming)"
        )
    if out.exists() and not overwrite:
        raise OdqaError(f"{out} already exists; choose another --out or pass --overwrite")
    if not corpus:
        raise OdqaError("trimming needs at least one --corpus file: the vocabulary kept is what those texts use")
    spec = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    if spec.get("model", {}).get("type") != "Unigram":
        raise OdqaError(
            f"{model_dir}: vocabulary trimming supports Unigram (SentencePiece) tokenizers, this one is "
            f"{spec.get('model', {}).get('type')}"
        )
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    old_rows = int(config["vocab_size"])

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    counts = piece_counts(tokenizer, corpus_texts(corpus, max_documents))
    kept = pieces_to_keep(spec, counts, min_count)
    weights = load_file(str(model_dir / "model.safetensors"))
    if not any(values.shape[0] == old_rows for values in weights.values() if values.ndim >= 1):
        raise OdqaError(
            f"{model_dir}: no tensor with {old_rows} rows (config vocab_size); cannot find the embedding matrix"
        )
    trimmed = {
        name: (values[kept] if values.ndim >= 1 and values.shape[0] == old_rows else values)
        for name, values in weights.items()
    }
    new_spec = trimmed_tokenizer_spec(spec, kept)
    new_id = {int(old): new for new, old in enumerate(kept)}
    config["vocab_size"] = len(kept)
    for key in ("pad_token_id", "bos_token_id", "eos_token_id"):
        if isinstance(config.get(key), int) and config[key] in new_id:
            config[key] = new_id[config[key]]
    total_tokens = int(counts.sum())
    report = {
        "from": str(model_dir),
        "pieces_before": len(spec["model"]["vocab"]),
        "pieces_kept": len(kept),
        "pieces_used_by_corpus": int((counts > 0).sum()),
        "corpus": [str(p) for p in corpus],
        "max_documents": max_documents,
        "corpus_tokens": total_tokens,
        "min_count": min_count,
        "embedding_rows": [old_rows, len(kept)],
        "parameters": [int(sum(v.size for v in weights.values())), int(sum(v.size for v in trimmed.values()))],
    }
    manifest_path = model_dir / MODEL_FILE
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.exists() else {}
    manifest["trimmed"] = report
    with atomic_dir(out) as tmp:
        save_file(trimmed, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
        (tmp / "tokenizer.json").write_text(json.dumps(new_spec, ensure_ascii=False), encoding="utf-8")
        for name in COPIED:
            if (model_dir / name).exists():
                shutil.copy2(model_dir / name, tmp / name)
        (tmp / MODEL_FILE).write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    log.info(
        "kept %d of %d pieces (%d used by the corpus)",
        len(kept),
        report["pieces_before"],
        report["pieces_used_by_corpus"],
    )
    return report
