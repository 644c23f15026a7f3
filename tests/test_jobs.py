"""Ray Data jobs: `odqa predict` and dense encoding over Ray give the same answers and vectors as
the single-machine commands, resume a killed run, and survive a worker node that dies mid-job."""

import json

import numpy as np
import pytest

from conftest import KOREAN_QA
from odqa.errors import OdqaError

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")
pytest.importorskip("torch")

from odqa.e2e import _record, answer_here, predict_file, run_settings
from odqa.io.questions import Question
from odqa.pipeline import Pipeline, PipelineConfig

pytestmark = pytest.mark.slow  # each test starts Ray and its Ray Data actors: tens of seconds on 2 cores

QUESTIONS = [Question(f"q{i}", q) for i, (_, q, _) in enumerate(KOREAN_QA * 3)]


@pytest.fixture(scope="module")
def local_ray():
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=200 * 2**20)
    yield ray


@pytest.fixture(scope="module")
def pipeline(korean_docs_index, korean_reader):
    return Pipeline(PipelineConfig(index=str(korean_docs_index), reader=str(korean_reader), k=3)).warm_up()


def written(folder):
    return {
        name: json.loads((folder / name).read_text(encoding="utf-8"))
        for name in ("predictions.json", "nbest_predictions.json", "retrieved.json")
    }


def test_predict_on_ray_writes_what_predict_writes_and_resumes(local_ray, pipeline, tmp_path):
    from odqa.distributed.jobs import answer_on_ray

    here = predict_file(pipeline, QUESTIONS, tmp_path / "here", batch_size=4, quiet=True)
    nodes = []
    on_ray = predict_file(
        Pipeline(pipeline.config),  # the driver's pipeline loads no reader: the actors do
        QUESTIONS,
        tmp_path / "ray",
        batch_size=4,
        quiet=True,
        answer=lambda p, batches: answer_on_ray(p, batches, workers=2, on_batch=nodes.append),
    )
    assert on_ray == here and written(tmp_path / "ray") == written(tmp_path / "here")  # every score, bit for bit
    assert len(nodes) == 6  # 24 questions in batches of 4

    # a run killed after two questions: the Ray run keeps them and answers only the rest
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    kept = {"id": "q0", "answer": "미리 쓴 답", "nbest": [], "passages": []}
    first = _record(QUESTIONS[1], pipeline.ask(QUESTIONS[1].text))
    lines = [{"settings": json.loads(json.dumps(run_settings(pipeline)))}, kept, first]
    (resumed / "partial.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines))
    asked = []

    def count(p, batches):
        asked.extend(q.id for batch in batches for q in batch)
        return answer_on_ray(p, batches, workers=2)

    predictions = predict_file(pipeline, QUESTIONS, resumed, batch_size=4, quiet=True, answer=count)
    assert predictions["q0"] == "미리 쓴 답" and "q0" not in asked and "q1" not in asked and len(asked) == 22
    assert {k: v for k, v in predictions.items() if k != "q0"} == {k: v for k, v in here.items() if k != "q0"}


def test_a_job_that_fails_on_ray_is_one_clear_error(local_ray, pipeline, tmp_path):
    from odqa.distributed.jobs import answer_on_ray

    broken = Pipeline(PipelineConfig.from_dict({**pipeline.config.to_dict(), "reader": str(tmp_path / "gone")}))
    broken.index = pipeline.index
    with pytest.raises(OdqaError, match="the Ray prediction job failed.*run again to resume"):
        list(answer_on_ray(broken, [QUESTIONS[:2]], workers=1))
    with pytest.raises(OdqaError, match="at least 1"):
        list(answer_on_ray(pipeline, [QUESTIONS[:2]], workers=0))


def test_dense_encoding_on_ray_gives_the_same_index_and_resumes(local_ray, retriever_folders, tmp_path, monkeypatch):
    import odqa.retrieval.encoder as encoder_module
    from odqa.retrieval.build import build_dense_index

    monkeypatch.setattr(encoder_module, "ENCODE_CHUNK", 2)  # several chunks per part, as a big corpus has
    folder = retriever_folders
    corpus, encoder = folder / "docs.jsonl", str(folder / "encoder")
    here, _ = build_dense_index(corpus, tmp_path / "here", encoder, quiet=True, shards=2)
    on_ray, _ = build_dense_index(corpus, tmp_path / "ray", encoder, quiet=True, shards=2, ray=True, workers=2)
    n = here.n_passages
    vectors = here.faiss_index.reconstruct_n(0, n)
    assert np.array_equal(on_ray.faiss_index.reconstruct_n(0, n), vectors)
    assert not (tmp_path / "ray.shards").exists()  # the chunks are gone once the index is saved

    # in bf16 the Ray actors encode in bf16 too: their vectors are this process's bf16 ones, not fp32's
    here16, _ = build_dense_index(corpus, tmp_path / "here16", encoder, quiet=True, shards=2, precision="bf16")
    ray16, _ = build_dense_index(
        corpus, tmp_path / "ray16", encoder, quiet=True, shards=2, ray=True, workers=2, precision="bf16"
    )
    bf16_here, bf16_ray = here16.faiss_index.reconstruct_n(0, n), ray16.faiss_index.reconstruct_n(0, n)
    assert np.abs(bf16_ray - bf16_here).max() < np.abs(bf16_here - vectors).max() / 4
    assert ray16.manifest["encoder"]["precision"] == "bf16"

    # killed after some chunks were saved: the rerun encodes only the others, with the same result
    import odqa.distributed.jobs as jobs

    saved = []
    real = jobs.encode_on_ray

    def stop_after_two(texts, chunks, folder, *args, **kwargs):
        for chunk in chunks[:2]:
            real(texts, [chunk], folder, *args, **kwargs)
        saved.extend(chunks[:2])
        raise KeyboardInterrupt

    monkeypatch.setattr(jobs, "encode_on_ray", stop_after_two)
    with pytest.raises(KeyboardInterrupt):
        build_dense_index(corpus, tmp_path / "again", encoder, quiet=True, ray=True)
    encoded = []

    def record(texts, chunks, folder, *args, **kwargs):
        encoded.extend(name for name, _, _ in chunks if not (folder / name).exists())
        return real(texts, chunks, folder, *args, **kwargs)

    monkeypatch.setattr(jobs, "encode_on_ray", record)
    again, _ = build_dense_index(corpus, tmp_path / "again", encoder, quiet=True, ray=True)
    assert len(encoded) == -(-n // 2) - 2 and not set(encoded) & {name for name, _, _ in saved}
    one_part, _ = build_dense_index(corpus, None, encoder, quiet=True)
    assert np.array_equal(again.faiss_index.reconstruct_n(0, n), one_part.faiss_index.reconstruct_n(0, n))


def test_predict_on_a_cluster_loses_no_question_when_a_node_dies(pipeline, tmp_path):
    from ray.cluster_utils import Cluster

    from odqa.distributed.jobs import answer_on_ray

    batches = [QUESTIONS[i : i + 2] for i in range(0, len(QUESTIONS), 2)]
    expected = [record for records in answer_here(pipeline, batches) for record in records]
    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "object_store_memory": 100 * 2**20})
    workers = {
        node.node_id: node for node in (cluster.add_node(num_cpus=2, object_store_memory=100 * 2**20) for _ in range(2))
    }
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        nodes, answered = [], []
        for records in answer_on_ray(Pipeline(pipeline.config), batches, workers=2, on_batch=nodes.append):
            answered += records
            if len(nodes) == 1:  # the node that answered first dies with its actor and what it holds
                cluster.remove_node(workers.pop(nodes[0]))
        assert sorted(answered, key=lambda r: r["id"]) == sorted(expected, key=lambda r: r["id"])
        assert set(nodes[1:]) & set(workers)  # the rest was answered on the node still alive
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_the_command_line_predicts_on_ray_as_without(korean_docs_index, korean_reader, tmp_path):
    from test_cli import odqa

    questions = tmp_path / "q.jsonl"
    questions.write_text(
        "".join(json.dumps({"id": q.id, "question": q.text}, ensure_ascii=False) + "\n" for q in QUESTIONS)
    )
    common = ("--index", korean_docs_index, "--reader", korean_reader, "--questions", questions, "-k", "3", "-q")
    here = odqa("predict", *common, "--out", tmp_path / "here")
    assert here.returncode == 0, here.stderr
    on_ray = odqa("predict", *common, "--out", tmp_path / "ray", "--ray", "--workers", "2")
    assert on_ray.returncode == 0, on_ray.stderr
    assert "answered 24 questions" in on_ray.stdout
    # nothing from Ray but the one line Ray Data 2.60 prints for every actor pool (ray-project/ray#57733)
    assert all("issues/53727" in line for line in on_ray.stderr.splitlines() if line.strip()), on_ray.stderr
    assert written(tmp_path / "ray") == written(tmp_path / "here")
    refused = odqa("predict", *common, "--out", tmp_path / "none", "--ray", "--reader", tmp_path / "gone")
    assert refused.returncode != 0 and "model folder not found" in refused.stderr and "Traceback" not in refused.stderr
