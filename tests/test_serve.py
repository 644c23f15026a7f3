"""The HTTP service with FastAPI's test client: answers, search, health, and every bad input."""

import json
import threading

import pytest

pytest.importorskip("torch")
pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient

from odqa.pipeline import Pipeline, PipelineConfig
from odqa.serve.app import create_app


@pytest.fixture(scope="module")
def client(korean_docs_index, korean_reader):
    pipeline = Pipeline(PipelineConfig(index=str(korean_docs_index), reader=str(korean_reader), k=3))
    with TestClient(create_app(pipeline)) as test_client:
        yield test_client


def test_ask_search_health(client):
    response = client.post("/ask", json={"question": "훈민정음을 창제한 왕은?"})
    assert response.status_code == 200
    data = response.json()
    assert data["answer"]["text"] == "세종" and data["passages"][0]["title"] == "세종"
    assert data["timings"]["total_ms"] > 0
    lean = client.post(
        "/ask", json={"question": "훈민정음을 창제한 왕은?", "k": 1, "n_best": 1, "passages": False}
    ).json()
    assert "passages" not in lean and len(lean["nbest"]) == 1
    many = client.post("/ask", json={"question": "훈민정음을 창제한 왕은?", "n_best": 12}).json()
    assert len(many["nbest"]) == 12  # beyond the pipeline's default of 5, up to the request's limit
    hits = client.post("/search", json={"question": "부산 해운대", "k": 2}).json()["passages"]
    assert hits[0]["title"] == "부산광역시"
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["reader_report"]["finished"] is True
    assert health["reader_report"]["warning"] is None  # trained to the end: nothing to warn about
    assert "/ask" in client.get("/openapi.json").json()["paths"]
    page = client.get("/")
    assert page.status_code == 200 and 'id="question"' in page.text


@pytest.mark.parametrize(
    "body, status, words",
    [
        ({"question": ""}, 422, "empty"),
        ({"question": "   "}, 422, "empty"),
        ({"question": "가" * 2000}, 422, "question"),
        ({"question": "질문", "k": 0}, 422, "k"),
        ({"question": "질문", "k": 100000}, 422, "k"),
        ({"question": "질문", "colour": "red"}, 422, "colour"),
        ({"k": 3}, 422, "question"),
        ({"question": 42}, 422, "question"),
    ],
)
def test_bad_requests_get_json_errors(client, body, status, words):
    response = client.post("/ask", json=body)
    assert response.status_code == status
    assert words in json.dumps(response.json(), ensure_ascii=False)


def test_malformed_huge_and_non_utf8_bodies(client):
    assert client.post("/ask", content=b"{not json", headers={"content-type": "application/json"}).status_code == 422
    assert (
        client.post(
            "/ask", content=b'{"question": "\xff\xfe"}', headers={"content-type": "application/json"}
        ).status_code
        == 422
    )
    huge = client.post(
        "/ask", content=json.dumps({"question": "가" * 100_000}).encode(), headers={"content-type": "application/json"}
    )
    assert huge.status_code == 413 and "bytes" in huge.json()["error"]
    assert client.post("/search", json={"question": "질문", "k": -1}).status_code == 422
    # and the server still answers afterwards
    assert client.post("/ask", json={"question": "대한민국의 수도는?"}).status_code == 200


def test_concurrent_requests_each_get_their_own_answer(client):
    questions = ["훈민정음을 창제한 왕은?", "해운대 해수욕장이 유명한 도시는?", "대한민국의 수도는?"] * 4
    expected = {q: client.post("/ask", json={"question": q}).json()["answer"]["text"] for q in set(questions)}
    answers = [None] * len(questions)

    def call(i):
        answers[i] = client.post("/ask", json={"question": questions[i]}).json()["answer"]["text"]

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(questions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == [expected[q] for q in questions]
