import json
from pathlib import Path

import pytest

KOREAN_DOCS = [
    {"id": "1", "title": "서울특별시", "text": "서울특별시는 대한민국의 수도이다.\n한강이 도시를 가로질러 흐른다. 인구는 약 천만 명이다."},
    {"id": "2", "title": "부산광역시", "text": "부산광역시는 대한민국 제2의 도시이다.\n해운대 해수욕장이 유명하다."},
    {"id": "3", "title": "수학", "text": "수학은 수, 양, 구조, 공간을 다루는 학문이다.\n피타고라스 정리는 직각삼각형에 관한 정리이다."},
    {"id": "4", "title": "김치", "text": "김치는 한국의 전통 발효 음식이다. 배추와 고춧가루로 만든다."},
    {"id": "5", "title": "세종", "text": "세종은 조선의 제4대 왕이다.\n훈민정음을 창제하였다. 훈민정음은 한글의 옛 이름이다."},
    {"id": "6", "title": "한강", "text": "한강은 서울을 지나 황해로 흐르는 강이다."},
]


@pytest.fixture
def corpus_file(tmp_path: Path) -> Path:
    path = tmp_path / "docs.jsonl"
    path.write_text("\n".join(json.dumps(d, ensure_ascii=False) for d in KOREAN_DOCS) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def squad_file(tmp_path: Path) -> Path:
    data = {
        "version": "test",
        "data": [
            {"title": "세종", "paragraphs": [{"context": KOREAN_DOCS[4]["text"], "document_id": 5, "qas": [
                {"id": "q1", "question": "훈민정음을 창제한 왕은?", "answers": [{"text": "세종", "answer_start": 0}]},
            ]}]},
            {"title": "부산광역시", "paragraphs": [{"context": KOREAN_DOCS[1]["text"], "qas": [
                {"id": "q2", "question": "해운대 해수욕장이 있는 도시는?", "answers": [{"text": "부산광역시", "answer_start": 0}]},
            ]}]},
            {"title": "없는 문서", "paragraphs": [{"context": "아무것도 없다.", "qas": [
                {"id": "q3", "question": "대한민국의 수도는?", "answers": [{"text": "서울특별시", "answer_start": 0}]},
            ]}]},
        ],
    }
    path = tmp_path / "questions.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path
