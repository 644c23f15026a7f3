"""The HTTP service: POST /ask, POST /search, GET /health, the web page at /, OpenAPI at /docs.

The pipeline is loaded once, before the app is made. Questions that arrive together are answered
in one batch (a short collection window, one worker thread owning the model), so concurrent
clients share reading passes instead of queueing one by one. Every bad input gets a JSON error
(413 for oversized bodies, 422 for invalid fields) and the server keeps serving."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import resources

from pydantic import BaseModel, ConfigDict, Field, field_validator

from odqa.errors import OdqaError
from odqa.pipeline import Pipeline
from odqa.serve.requestlog import RequestLog, ask_record

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 1000
MAX_K = 100
MAX_BODY_BYTES = 16 * 1024


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("the question is empty")
    return value.strip()


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(
        ..., max_length=MAX_QUESTION_CHARS, description="the question, in any language the index covers"
    )
    k: int | None = Field(None, ge=1, le=MAX_K, description="passages to read (default: the server's k)")
    n_best: int = Field(5, ge=1, le=20, description="answers to return")
    passages: bool = Field(True, description="include the retrieved passages as evidence")

    check_question = field_validator("question")(classmethod(lambda cls, value: _not_blank(value)))


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(..., max_length=MAX_QUESTION_CHARS)
    k: int = Field(10, ge=1, le=MAX_K)

    check_question = field_validator("question")(classmethod(lambda cls, value: _not_blank(value)))


def answer_by_key(pipeline: Pipeline, requests: list[tuple[str, int, int | None]]) -> list:
    """Each (question, k, n_best) request's PipelineResult — or the exception its group raised —
    from one `ask_batch` per (k, n_best) group (the in-process Batcher and Ray Serve replicas)."""
    answers: list = [None] * len(requests)
    for k, n_best in {(k, n) for _, k, n in requests}:
        chosen = [i for i, (_, kk, n) in enumerate(requests) if (kk, n) == (k, n_best)]
        try:
            results = pipeline.ask_batch([requests[i][0] for i in chosen], k, n_best=n_best)
        except Exception as e:
            results = [e] * len(chosen)
        for i, result in zip(chosen, results):
            answers[i] = result
    return answers


class Batcher:
    """Collects /ask requests for a few milliseconds and answers each group (same k) in one call."""

    def __init__(self, pipeline: Pipeline, window_ms: float = 10.0, max_batch: int = 16):
        self.pipeline, self.window, self.max_batch = pipeline, window_ms / 1000, max_batch
        self.queue: asyncio.Queue | None = None
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="odqa-reader")
        self.task: asyncio.Task | None = None

    async def ask(self, question: str, k: int, n_best: int | None = None):
        if self.task is None:
            self.queue = asyncio.Queue()
            self.task = asyncio.create_task(self._run())
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((question, (k, n_best), future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            pending = [await self.queue.get()]
            deadline = loop.time() + self.window
            while len(pending) < self.max_batch:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    pending.append(await asyncio.wait_for(self.queue.get(), timeout))
                except asyncio.TimeoutError:
                    break
            requests = [(q, k, n_best) for q, (k, n_best), _ in pending]
            answers = await loop.run_in_executor(self.executor, answer_by_key, self.pipeline, requests)
            for (_, _, future), answer in zip(pending, answers):
                if future.done():
                    continue
                if isinstance(answer, Exception):  # every waiting request gets an answer, even an error
                    future.set_exception(answer)
                else:
                    future.set_result(answer)

    async def search(self, question: str, k: int):
        return await asyncio.get_running_loop().run_in_executor(self.executor, self.pipeline.retrieve, [question], k)

    @property
    def n_passages(self) -> int:
        return self.pipeline.index.n_passages


def _question_of(body: bytes) -> str | None:
    """The question of a request body, for the log of a refused request (None when unreadable)."""
    try:
        question = json.loads(body).get("question")
    except (ValueError, AttributeError):
        return None
    return question if isinstance(question, str) else None


def create_app(
    pipeline: Pipeline,
    max_body_bytes: int = MAX_BODY_BYTES,
    batch_window_ms: float = 10.0,
    request_log: RequestLog | None = None,
    answerer=None,
):
    """The app; with `request_log`, one line per /ask and /search request, answered or refused.

    Questions go to `answerer` — anything with async `ask(question, k, n_best)` and
    `search(question, k)` and an `n_passages` — by default a `Batcher` over the pipeline loaded
    here; `odqa serve --ray` passes the Ray Serve replicas' (`odqa.distributed.serving`), and
    then `pipeline` only gives the config."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse
    from starlette.exceptions import HTTPException

    if answerer is None:
        answerer = Batcher(pipeline.warm_up(), batch_window_ms)
    batcher = answerer
    app = FastAPI(
        title="odqa", version="1", description="Open-domain question answering: retrieve, read, answer with evidence."
    )

    def refusal(request: Request, message: str, status: int, problems: list | None = None):
        request.state.error = message if not problems else f"{message}: {problems}"
        body = {"error": message} | ({"problems": problems} if problems is not None else {})
        return JSONResponse(body, status_code=status)

    @app.middleware("http")
    async def limit_and_log(request: Request, call_next):
        start = time.perf_counter()
        body = b""
        response = None
        try:
            if request.method == "POST":
                declared = request.headers.get("content-length")
                too_big = f"request body over {max_body_bytes} bytes"
                if declared is not None and (not declared.isdigit() or int(declared) > max_body_bytes):
                    return (response := refusal(request, too_big, 413))
                body = await request.body()
                if len(body) > max_body_bytes:
                    return (response := refusal(request, too_big, 413))
                try:
                    body.decode("utf-8")
                except UnicodeDecodeError as e:
                    return (
                        response := refusal(request, f"request body is not UTF-8 ({e.reason} at byte {e.start})", 422)
                    )
            response = await call_next(request)
            return response
        finally:
            # Answered requests are logged by their endpoint; refused and failed ones here.
            refused = response is None or response.status_code != 200
            if request_log is not None and request.url.path in ("/ask", "/search") and refused:
                record = {
                    "endpoint": request.url.path,
                    "status": response.status_code if response is not None else 500,
                    "question": _question_of(body) if len(body) <= max_body_bytes else None,
                    "error": getattr(request.state, "error", None) or "internal error",
                    "total_ms": round(1000 * (time.perf_counter() - start), 2),
                }
                request_log.write(record)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        problems = []
        for e in exc.errors():
            loc = [str(p) for p in e.get("loc", ()) if p != "body"]
            if e.get("type") == "json_invalid":  # the location is a character position, not a field
                position = f" at character {loc[-1]}" if loc else ""
                problems.append({"field": "body", "problem": f"malformed JSON{position}: {e.get('msg', '')}"})
            else:
                problems.append({"field": ".".join(loc), "problem": e.get("msg", "")})
        return refusal(request, "invalid request", 422, problems)

    @app.exception_handler(OdqaError)
    async def refused(request: Request, exc: OdqaError):
        return refusal(request, str(exc), 422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):  # 404, 405: the same shape as every error
        return refusal(request, f"{exc.detail}: {request.method} {request.url.path}", exc.status_code)

    reader_quality = pipeline.reader_report()

    @app.get("/health")
    async def health() -> dict:
        return {
            "status": "ok",
            "passages": batcher.n_passages,
            "reader": pipeline.config.reader,
            "reader_report": reader_quality,
            "k": pipeline.config.k,
        }

    @app.post("/ask")
    async def ask(request: AskRequest) -> dict:
        start = time.perf_counter()
        k = request.k or pipeline.config.k
        result = await batcher.ask(request.question, k, request.n_best)
        out = result.to_dict(with_passages=request.passages)
        out["timings"]["total_ms"] = 1000 * (time.perf_counter() - start)
        if request_log is not None:
            request_log.write(ask_record(request.question, k, result, out["timings"]["total_ms"]))
        return out

    @app.post("/search")
    async def search(request: SearchRequest) -> dict:
        start = time.perf_counter()
        hits = (await batcher.search(request.question, request.k))[0]
        record = {
            "endpoint": "/search",
            "status": 200,
            "question": request.question,
            "k": request.k,
            "passage_ids": [h.passage_id for h in hits],
            "passage_scores": [round(h.score, 4) for h in hits],
            "total_ms": round(1000 * (time.perf_counter() - start), 2),
        }
        if request_log is not None:
            request_log.write(record)
        passages = [
            {
                "passage_id": h.passage_id,
                "rank": h.rank,
                "score": h.score,
                "title": h.passage.title,
                "doc_id": h.passage.doc_id,
                "text": h.passage.text,
            }
            for h in hits
        ]
        return {"question": request.question, "passages": passages}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        return resources.files("odqa.serve").joinpath("index.html").read_text(encoding="utf-8")

    app.state.pipeline = pipeline
    return app
