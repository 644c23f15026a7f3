"""One JSON line per request the service answers or refuses, to a rotating file (the standard
library's RotatingFileHandler): time, endpoint, status, question (or only its length, for
privacy), k, answer and its score, the retrieved passage ids and scores, latency per stage and
the error. `odqa logs report` (odqa.serve.report) reads these files."""

from __future__ import annotations

import json
import logging
import logging.handlers
import threading
import time
from pathlib import Path

LOG_VERSION = 1


class RequestLog:
    def __init__(
        self,
        path: str | Path,
        max_bytes: int = 10 * 1024 * 1024,
        backups: int = 5,
        questions: bool = True,
    ):
        """`path` rotates at `max_bytes` into `path.1` … `path.{backups}`; with `questions` off
        only each question's length is kept."""
        self.path, self.questions = Path(path), questions
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handler = logging.handlers.RotatingFileHandler(
            self.path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
        )
        self._lock = threading.Lock()

    def write(self, record: dict) -> None:
        now = time.time()
        record = {"v": LOG_VERSION, "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)), **record}
        record["ts"] = round(now, 3)
        question = record.pop("question", None)
        if question is not None:
            record["question_chars"] = len(question)
            if self.questions:
                record["question"] = question
        line = json.dumps(record, ensure_ascii=False)
        with self._lock:  # the handler formats and rotates; one line at a time
            self._handler.emit(logging.makeLogRecord({"msg": line, "levelno": logging.INFO}))

    def close(self) -> None:
        self._handler.close()


def ask_record(question: str, k: int, result, total_ms: float) -> dict:
    """The log record of an answered /ask from the pipeline's result (a PipelineResult)."""
    answer = result.answer
    return {
        "endpoint": "/ask",
        "status": 200,
        "question": question,
        "k": k,
        "answer": answer.text if answer else None,
        "score": round(answer.score, 4) if answer else None,
        "passage_ids": [p.passage_id for p in result.passages],
        "passage_scores": [round(p.score, 4) for p in result.passages],
        "retrieve_ms": round(result.timings.get("retrieve_ms", 0.0), 2),
        "read_ms": round(result.timings.get("read_ms", 0.0), 2),
        "total_ms": round(total_ms, 2),
    }
