"""`odqa serve --ray`: the pipeline as Ray Serve replicas behind today's API and page — the same
answers as the single-process server, the same errors, and a request log."""

import json
import time

import pytest

from conftest import KOREAN_QA

ray = pytest.importorskip("ray")
pytest.importorskip("ray.serve")
pytest.importorskip("torch")
httpx = pytest.importorskip("httpx")

PORT = 18471


@pytest.mark.slow  # Ray Serve's controller, proxy and two replicas start in about a minute here
def test_ray_serve_answers_as_the_single_process_server(korean_docs_index, korean_reader, tmp_path):
    from fastapi.testclient import TestClient

    from odqa.distributed.serving import serve_on_ray
    from odqa.pipeline import Pipeline, PipelineConfig
    from odqa.serve.app import create_app

    config = PipelineConfig(index=str(korean_docs_index), reader=str(korean_reader), k=3)
    with TestClient(create_app(Pipeline(config))) as local:
        expected = {q: local.post("/ask", json={"question": q, "n_best": 3}).json() for _, q, _ in KOREAN_QA[:4]}
        health = local.get("/health").json()
        found = local.post("/search", json={"question": KOREAN_QA[0][1], "k": 2}).json()
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=200 * 2**20)
    log = tmp_path / "requests.jsonl"
    serve = serve_on_ray(
        config.to_dict(), port=PORT, replicas=2, cpus=0.5, log_settings={"path": str(log)}, block=False
    )
    try:
        url = f"http://127.0.0.1:{PORT}"
        with httpx.Client(base_url=url, timeout=120) as client:
            for _ in range(120):  # the ingress answers once both replicas have loaded
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(1)
            assert client.get("/health").json() == health
            for _, question, _ in KOREAN_QA[:4]:
                asked = client.post("/ask", json={"question": question, "n_best": 3})
                assert asked.status_code == 200, asked.text
                got = asked.json()
                assert got["answer"] == expected[question]["answer"] and got["nbest"] == expected[question]["nbest"]
            searched = client.post("/search", json={"question": KOREAN_QA[0][1], "k": 2}).json()
            assert searched == found
            blank = client.post("/ask", json={"question": "  "})
            assert blank.status_code == 422 and blank.json()["problems"][0]["field"] == "question"
            assert client.post("/ask", content=b"x" * 20000).status_code == 413
            assert "<html" in client.get("/").text.lower()
        records = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
        assert sum(r["endpoint"] == "/ask" and r["status"] == 200 for r in records) == 4
        assert any(r["status"] == 422 for r in records)
    finally:
        serve.shutdown()
