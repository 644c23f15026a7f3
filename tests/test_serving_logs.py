"""Serving logs: one JSON line per request from a real (test-client) serving run, questions left
out on request, and `odqa logs report` on it and on a crafted log with a corrupt line."""

import json

import pytest

from odqa import OdqaError
from odqa.serve.report import html_report, read_log, summarise


def write_log(path, records, extra_lines=()):
    lines = [
        json.dumps({"v": 1, "time": f"2026-12-01T10:00:{i:02d}", "ts": 1000.0 + i, **r}) for i, r in enumerate(records)
    ]
    path.write_text("\n".join([*lines, *extra_lines]) + "\n", encoding="utf-8")
    return path


def ask(question, score, top, total, answer="답"):
    return {
        "endpoint": "/ask",
        "status": 200,
        "question": question,
        "k": 3,
        "answer": answer,
        "score": score,
        "passage_ids": [1, 2],
        "passage_scores": [top, top / 2],
        "retrieve_ms": total / 4,
        "read_ms": total / 2,
        "total_ms": total,
    }


def test_report_of_a_crafted_log_with_a_corrupt_line(tmp_path):
    records = [ask(f"질문 {i}", score=i / 10, top=10 - i, total=100 + 10 * i) for i in range(10)]
    records.append({"endpoint": "/ask", "status": 422, "error": "the question is empty", "total_ms": 1.0})
    log = write_log(tmp_path / "serve.log", records, ['{"v": 1, "endpoint": "/ask"', "not json"])
    summary = summarise(read_log([log]), lowest=3)
    assert summary["requests"] == 11 and summary["corrupt_lines"] == 2
    assert summary["first_corrupt"] == f"{log}:12"
    assert summary["per_minute"] == pytest.approx(60 * 11 / 10)
    assert summary["by_status"] == {"/ask 200": 10, "/ask 422": 1}
    assert summary["errors"] == [("the question is empty", 1)]
    total = summary["latency_ms"]["/ask total"]
    assert total["p50"] == pytest.approx(145.0) and total["max"] == 190 and total["n"] == 10
    assert summary["latency_ms"]["/ask read"]["p90"] == pytest.approx(0.5 * (100 + 10 * 8.1))
    assert [r["question"] for r in summary["lowest_confidence"]] == ["질문 0", "질문 1", "질문 2"]
    assert [r["top_score"] for r in summary["weakest_retrieval"]] == [1, 2, 3]  # 질문 9, 8, 7
    page = html_report(summary)
    assert "<svg" in page and "질문 0" in page and "<script" not in page


def test_questions_are_escaped_in_html_and_missing_or_empty_logs_are_named(tmp_path):
    log = write_log(tmp_path / "serve.log", [ask("<script>alert(1)</script>", 0.5, 3.0, 50)])
    assert "<script>alert" not in html_report(summarise(read_log([log])))
    with pytest.raises(OdqaError, match="serving log not found"):
        read_log([tmp_path / "missing.log"])
    (tmp_path / "bad.log").write_text("garbage\n", encoding="utf-8")
    with pytest.raises(OdqaError, match=r"no requests in .*1 corrupt lines"):
        summarise(read_log([tmp_path / "bad.log"]))
    write_log(tmp_path / "old.log", [{"endpoint": "/ask", "status": 200}])
    (tmp_path / "old.log").write_text((tmp_path / "old.log").read_text().replace('"v": 1', '"v": 0'))
    with pytest.raises(OdqaError, match="another odqa log version"):
        summarise(read_log([tmp_path / "old.log"]))


def test_a_serving_run_logs_every_request_and_the_report_reads_it(tmp_path, korean_docs_index, korean_reader):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from odqa.cli import app as cli
    from odqa.pipeline import Pipeline, PipelineConfig
    from odqa.serve.app import create_app
    from odqa.serve.requestlog import RequestLog

    pipeline = Pipeline(PipelineConfig(index=str(korean_docs_index), reader=str(korean_reader), k=3))
    for questions in (True, False):
        path = tmp_path / f"serve-{questions}.log"
        with TestClient(create_app(pipeline, request_log=RequestLog(path, questions=questions))) as client:
            assert (
                client.post("/ask", json={"question": "훈민정음을 창제한 왕은?", "passages": False}).status_code == 200
            )
            assert client.post("/search", json={"question": "부산 해운대", "k": 2}).status_code == 200
            assert client.post("/ask", json={"question": "  "}).status_code == 422
            bad = client.post("/ask", content=b'{"question": "x",', headers={"content-type": "application/json"})
            assert bad.status_code == 422 and bad.json()["problems"][0]["field"] == "body"
            assert "malformed JSON" in bad.json()["problems"][0]["problem"]
            wrong = client.get("/ask")
            assert wrong.status_code == 405 and wrong.json()["error"].startswith("Method Not Allowed")
        lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        assert [(r["endpoint"], r["status"]) for r in lines] == [
            ("/ask", 200),
            ("/search", 200),
            ("/ask", 422),
            ("/ask", 422),
            ("/ask", 405),
        ]
        answered = lines[0]
        assert answered["answer"] == "세종" and answered["passage_ids"]  # logged though not returned
        assert len(answered["passage_scores"]) == len(answered["passage_ids"])
        assert answered["total_ms"] >= answered["read_ms"] > 0 and answered["question_chars"] == len(
            "훈민정음을 창제한 왕은?"
        )
        assert ("question" in answered) == questions and ("question" in lines[2]) == questions
        assert "empty" in lines[2]["error"]
    result = CliRunner().invoke(
        cli, ["logs", "report", str(tmp_path / "serve-True.log"), "--html", str(tmp_path / "r.html")]
    )
    assert result.exit_code == 0, result.output
    assert "5 requests" in result.output and "훈민정음을 창제한 왕은?" in result.output
    assert (tmp_path / "r.html").read_text(encoding="utf-8").count("<table>") == 5
    result = CliRunner().invoke(cli, ["logs", "report", str(tmp_path / "serve-False.log")])
    assert "훈민정음" not in result.output and "not logged, 13 characters" in result.output


def test_the_log_rotates_and_the_report_reads_the_rotated_files_in_order(tmp_path):
    from odqa.serve.requestlog import RequestLog

    log = RequestLog(tmp_path / "serve.log", max_bytes=600, backups=3)
    for i in range(12):
        log.write(
            {
                "endpoint": "/search",
                "status": 200,
                "question": f"질문 {i}",
                "passage_scores": [float(i)],
                "total_ms": 1.0,
            }
        )
    log.close()
    files = sorted(tmp_path.glob("serve.log*"))
    assert len(files) > 1 and all(f.stat().st_size <= 600 for f in files)
    kept = read_log(sorted(files, reverse=True))  # serve.log.3 … serve.log: oldest first
    questions = [r["question"] for r in kept.records]
    assert questions == [f"질문 {i}" for i in range(12 - len(questions), 12)]  # the newest, in order
