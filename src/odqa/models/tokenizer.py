"""Loading fast tokenizers safely, with the Hangul guard.

transformers 5 rebuilds a BERT tokenizer's normalizer from `tokenizer_config.json`; when that says
`strip_accents: null` and the tokenizer lower-cases, accents are stripped, which decomposes every
Hangul syllable into jamo and turns Korean words into [UNK]. `load_tokenizer` detects this (a
Korean probe sentence that becomes mostly [UNK] although the vocabulary has Hangul pieces) and
reloads with `strip_accents=False`; `save_tokenizer` writes the setting so the folder stays right.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from pathlib import Path

from odqa.errors import OdqaError

log = logging.getLogger(__name__)

HANGUL_PROBE = "대한민국의 수도는 서울이다"
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model")


def _is_hangul(ch: str) -> bool:
    return "\uac00" <= ch <= "\ud7a3"


def vocab_has_hangul(tokenizer) -> bool:
    return any(_is_hangul(piece.lstrip("#▁Ġ")[:1] or " ") for piece in tokenizer.get_vocab())


def unk_share(tokenizer, text: str = HANGUL_PROBE) -> float:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return sum(i == tokenizer.unk_token_id for i in ids) / max(1, len(ids))


def looks_local(path: str | Path) -> bool:
    """A path the user meant as a folder on disk rather than a hub id like 'klue/bert-base'."""
    text = str(path)
    if Path(path).exists() or text.startswith((".", "/", "~")) or text.count("/") > 1 or "\\" in text:
        return True
    # 'runs/reader-1' has the shape of a hub id, but when 'runs/' is a folder here it is a path.
    return "/" in text and Path(text.split("/")[0]).is_dir()


@functools.cache
def check_hub_model(name: str) -> None:
    """A model name that is no folder here is a Hugging Face Hub id: asked once of the hub, with a
    short timeout, before transformers spends a minute retrying an unreachable one. A name the hub
    does not have, or cannot be asked about (offline, no network), is refused at once, naming it;
    a copy in the local hub cache, and a gated model (the hub has it; transformers asks for the
    token), pass."""
    import huggingface_hub
    from huggingface_hub.errors import GatedRepoError, HFValidationError, RepositoryNotFoundError

    try:
        if isinstance(huggingface_hub.try_to_load_from_cache(name, "config.json"), str):
            return
    except HFValidationError:
        raise OdqaError(f"{name}: no such folder here, and not a valid Hugging Face Hub model id") from None
    if huggingface_hub.constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise OdqaError(f"{name}: no such folder here, and HF_HUB_OFFLINE is set with no copy of it in the hub cache")
    try:
        huggingface_hub.model_info(name, timeout=10)
    except GatedRepoError:
        return
    except RepositoryNotFoundError:
        raise OdqaError(f"{name}: no such folder here, and no such model on the Hugging Face Hub") from None
    except Exception as e:  # the network: DNS, refused, timed out, a server error
        raise OdqaError(
            f"{name}: no such folder here, and the Hugging Face Hub cannot be reached to fetch it as a model id "
            f"({type(e).__name__}); for a folder, give its path (e.g. ./{name})"
        ) from None


def load_tokenizer(path: str | Path, **kwargs):
    """A fast tokenizer from a local folder or a hub id; never runs remote code."""
    from transformers import AutoTokenizer, BertTokenizerFast

    local = Path(path)
    if looks_local(path) and not local.exists():
        raise OdqaError(f"tokenizer folder not found: {path}")
    if local.exists():
        if not local.is_dir():
            raise OdqaError(f"expected a model or tokenizer folder, got a file: {local}")
        if not any((local / name).exists() for name in TOKENIZER_FILES):
            raise OdqaError(f"{local}: no tokenizer files (one of {', '.join(TOKENIZER_FILES)})")
    if local.exists() and not (local / "tokenizer.json").exists() and not (local / "tokenizer_config.json").exists():
        if not (local / "vocab.txt").exists():
            raise OdqaError(f"{local}: has neither tokenizer.json nor tokenizer_config.json")
        # A bare WordPiece vocabulary (e.g. bert-base-multilingual-cased): keep case and accents.
        tokenizer = BertTokenizerFast(
            vocab=str(local / "vocab.txt"), do_lower_case=False, strip_accents=False, **kwargs
        )
    else:
        if not local.exists():
            check_hub_model(str(path))
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=False, **kwargs)
        except OSError as e:
            raise OdqaError(f"cannot load a tokenizer from {path}: {e}") from None
    if not getattr(tokenizer, "is_fast", False):
        raise OdqaError(
            f"{path}: the tokenizer is a slow (Python) tokenizer; odqa needs a fast one for character offsets "
            "(save it with tokenizer.json, e.g. AutoTokenizer.from_pretrained(..., use_fast=True).save_pretrained(...))"
        )
    if vocab_has_hangul(tokenizer) and unk_share(tokenizer) > 0.5 and "strip_accents" not in kwargs:
        log.warning(
            "%s: the tokenizer strips accents, which breaks Hangul into [UNK]; reloading with strip_accents=False", path
        )
        tokenizer = load_tokenizer(path, strip_accents=False, **kwargs)
    return tokenizer


def save_tokenizer(tokenizer, path: str | Path) -> None:
    """`save_pretrained`, plus `strip_accents: false` written where the normalizer keeps accents."""
    path = Path(path)
    tokenizer.save_pretrained(str(path))
    normalizer = getattr(tokenizer.backend_tokenizer, "normalizer", None)
    config_path = path / "tokenizer_config.json"
    bert = normalizer is not None and type(normalizer).__name__ == "BertNormalizer"
    if bert and normalizer.strip_accents is False and config_path.exists():
        config = json.loads(config_path.read_text(encoding="utf-8"))
        config["strip_accents"] = False
        config_path.write_text(json.dumps(config, ensure_ascii=False, indent=2), encoding="utf-8")
