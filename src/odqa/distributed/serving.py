"""`odqa serve --ray`: the pipeline as Ray Serve deployments — pipeline replicas (retriever and
reader, one per core or GPU, as many as asked) behind one HTTP ingress that serves today's API and
page (`odqa.serve.app.create_app`, unchanged: the same routes, limits, errors and request log).

Each replica batches the questions that reach it together (`serve.batch`), as the single-process
server's `Batcher` does, and Ray Serve spreads requests over the replicas, restarts a replica that
dies and keeps the others answering meanwhile."""

from __future__ import annotations

import asyncio
import time

from odqa.errors import OdqaError

MAX_BATCH = 16
BATCH_WAIT_S = 0.01


def _serve():
    from odqa.distributed.sharded import connect

    connect()  # the cluster this process joined, $RAY_ADDRESS, or a local one
    try:
        from ray import serve
    except ImportError as e:
        raise OdqaError(f"Ray Serve is missing a library ({e.name}): pip install 'odqa[ray]'") from None
    return serve


class RemoteAnswerer:
    """What `create_app` asks questions through, when they are answered by Ray Serve replicas."""

    def __init__(self, handle, n_passages: int):
        self.handle, self.n_passages = handle, n_passages

    async def ask(self, question: str, k: int, n_best: int | None = None):
        answer = await self.handle.ask.remote(question, k, n_best)
        if isinstance(answer, Exception):  # its batch failed: raised here, as a local call raises it
            raise answer
        return answer

    async def search(self, question: str, k: int):
        return [await self.handle.search.remote(question, k)]


def deployments():
    """The two deployment classes (made when Ray Serve is imported, not when odqa is)."""
    serve = _serve()

    @serve.deployment(max_ongoing_requests=2 * MAX_BATCH)  # room for a full batch while one is read
    class PipelineReplica:
        """One pipeline, loaded once; questions that arrive together answered in one batch per (k, n_best)."""

        def __init__(self, config: dict, cpus: float):
            from odqa.distributed.jobs import _threads
            from odqa.pipeline import Pipeline, PipelineConfig

            _threads(cpus)
            self.pipeline = Pipeline(PipelineConfig.from_dict(config)).warm_up()

        def n_passages(self) -> int:
            return self.pipeline.index.n_passages

        async def ask(self, question: str, k: int, n_best: int | None):
            return await self._ask_batch((question, k, n_best))

        @serve.batch(max_batch_size=MAX_BATCH, batch_wait_timeout_s=BATCH_WAIT_S)
        async def _ask_batch(self, requests: list[tuple]) -> list:
            from odqa.serve.app import answer_by_key

            return await asyncio.to_thread(answer_by_key, self.pipeline, requests)

        async def search(self, question: str, k: int):
            return (await asyncio.to_thread(self.pipeline.retrieve, [question], k))[0]

    @serve.deployment
    @serve.ingress()
    class Ingress:
        """The HTTP front: today's FastAPI app, asking the replicas."""

        def __init__(self, replicas, config: dict, log_settings: dict | None):
            self.replicas, self.config, self.log_settings = replicas, config, log_settings

        async def __serve_build_asgi_app__(self):
            from odqa.pipeline import Pipeline, PipelineConfig
            from odqa.serve.app import create_app
            from odqa.serve.requestlog import RequestLog

            request_log = RequestLog(**self.log_settings) if self.log_settings else None
            answerer = RemoteAnswerer(self.replicas, await self.replicas.n_passages.remote())
            return create_app(
                Pipeline(PipelineConfig.from_dict(self.config)), request_log=request_log, answerer=answerer
            )

    return PipelineReplica, Ingress


def serve_on_ray(
    config: dict,
    host: str = "127.0.0.1",
    port: int = 8000,
    replicas: int = 1,
    cpus: float = 1.0,
    log_settings: dict | None = None,
    block: bool = True,
):
    """Start the ingress and `replicas` pipeline replicas (`cpus` cores each, or a GPU each when
    the config's device is CUDA) on the Ray cluster, serving at http://host:port/; block until
    interrupted (then shut Serve down), or return once it answers when `block` is false."""
    from odqa.distributed.jobs import _absolute, _gpu

    if replicas < 1:
        raise OdqaError(f"--replicas must be at least 1, got {replicas}")
    serve = _serve()
    PipelineReplica, Ingress = deployments()
    config = _absolute(config)
    gpu = _gpu(config.get("device"))
    resources = {"num_cpus": 0, "num_gpus": 1} if gpu else {"num_cpus": cpus}
    replica = PipelineReplica.options(num_replicas=replicas, ray_actor_options=resources).bind(config, cpus)
    ingress = Ingress.options(ray_actor_options={"num_cpus": 0}).bind(replica, config, log_settings)
    serve.start(http_options={"host": host, "port": port})
    try:
        serve.run(ingress, name="odqa", route_prefix="/", blocking=False)
    except Exception as e:
        serve.shutdown()
        raise OdqaError(f"Ray Serve could not start the pipeline: {str(e).strip().splitlines()[0]}") from None
    if not block:
        return serve
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        serve.shutdown()
    return serve
