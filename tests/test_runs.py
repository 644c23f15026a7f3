"""Every indexing, training and evaluation run leaves a record — command line, config, input
fingerprints, versions, git commit, metrics — beside its output and in the run registry that
`odqa runs list / show / compare` reads."""

import hashlib
import json

import pytest
from typer.testing import CliRunner

from odqa.cli import app
from odqa.errors import OdqaError
from odqa.fingerprints import fingerprint, training_overlap
from odqa.runs import RECORD_FILE, Registry, log_metrics, recording


@pytest.fixture
def registry(tmp_path, monkeypatch):
    monkeypatch.setenv("ODQA_RUNS", str(tmp_path / "registry"))
    return Registry()


def odqa(*args):
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "250"})
    return result


def refused(result) -> str:
    """The one-line message `odqa` prints for an OdqaError (in-process, the runner keeps the exception)."""
    assert isinstance(result.exception, OdqaError), result.output
    return str(result.exception)


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_run_is_recorded_beside_its_output_and_in_the_registry(registry, tmp_path, corpus_file):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}", encoding="utf-8")
    out = tmp_path / "out"
    with recording("train-something", {"train": [corpus_file], "model": model, "out": out, "seed": 7}) as run:
        out.mkdir()
        log_metrics({"eval": {"exact_match": 47.1}})
        assert run.metrics == {"eval": {"exact_match": 47.1}}
    record = json.loads((out / RECORD_FILE).read_text(encoding="utf-8"))
    assert record["status"] == "ok" and record["error"] is None and record["seconds"] >= 0
    assert record["config"]["seed"] == 7 and record["outputs"] == {"out": str(out)}
    assert record["inputs"]["train"][0]["sha256"] == sha256(corpus_file)
    assert record["inputs"]["model"]["kind"] == "folder" and record["inputs"]["model"]["files"] == 1
    assert record["metrics"]["eval"]["exact_match"] == 47.1
    assert {"python", "odqa", "numpy"} <= set(record["versions"])
    assert "git_commit" in record and record["started"] <= record["ended"]
    records, unreadable = registry.records()
    assert [r["id"] for r in records] == [record["id"]] and not unreadable


def test_a_failed_run_is_recorded_as_failed(registry, tmp_path):
    with pytest.raises(OdqaError), recording("evaluate", {"out": tmp_path / "x.json"}):
        raise OdqaError("questions file is empty")
    (record,), _ = registry.records()
    assert record["status"] == "failed" and record["error"] == "questions file is empty"


def test_fingerprints_follow_content_not_names(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / "checkpoint-last").mkdir()
    (folder / "checkpoint-last" / "optimizer.pt").write_bytes(b"big")
    cache = {}
    first = fingerprint(folder, cache)
    assert first["files"] == 1 and len(cache) == 1  # checkpoints are not the model
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "model.safetensors").write_bytes(b"weights")
    assert fingerprint(copy)["sha256"] == first["sha256"]
    (copy / "model.safetensors").write_bytes(b"other weights")
    assert fingerprint(copy)["sha256"] != first["sha256"]


def test_commands_record_their_runs_and_odqa_runs_finds_them(registry, tmp_path, corpus_file, korean_qa_file):
    index = tmp_path / "index"
    assert odqa("index", "--corpus", corpus_file, "--out", index, "--processes", "1", "-q").exit_code == 0
    record = json.loads((index / RECORD_FILE).read_text(encoding="utf-8"))
    assert record["command"] == "index" and record["inputs"]["corpus"]["sha256"] == sha256(corpus_file)
    assert record["metrics"]["counts"]["passages"] > 0
    scores = tmp_path / "eval.json"
    result = odqa("eval-retrieval", "--index", index, "--questions", korean_qa_file, "-k", "1,5", "--out", scores)
    assert result.exit_code == 0, result.output
    evaluation = json.loads(scores.with_name("eval.json.run.json").read_text(encoding="utf-8"))
    assert evaluation["inputs"]["index_path"][0]["kind"] == "index"
    assert 0 <= evaluation["metrics"]["has_answer"]["top5"] <= 1

    listed = odqa("runs", "list", "--json")
    assert listed.exit_code == 0, listed.output
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [r["command"] for r in rows] == ["eval-retrieval", "index"]  # newest first
    assert rows[0]["metrics"]["has_answer.top5"] == evaluation["metrics"]["has_answer"]["top5"]
    table = odqa("runs", "list", "--metric", "top5", "--command", "eval-retrieval")
    assert "1 run of eval-retrieval" in table.stdout and "has_answer.top5" in table.stdout
    shown = odqa("runs", "show", evaluation["id"][-6:])  # the end of an id is enough
    assert json.loads(shown.stdout)["id"] == evaluation["id"]
    compared = odqa("runs", "compare", record["id"], evaluation["id"])
    assert compared.exit_code == 0 and "run command" in compared.stdout and "index" in compared.stdout


def test_a_bad_registry_is_named_and_a_run_still_writes_its_record(registry, tmp_path):
    assert "no run registry at" in refused(odqa("runs", "list"))
    registry.path.mkdir(parents=True)
    (registry.path / "registry.json").write_text(json.dumps({"format": "odqa.runs", "format_version": 99}))
    assert "format version 99; this odqa reads version 1" in refused(odqa("runs", "list"))
    out = tmp_path / "out"
    out.mkdir()
    with recording("index", {"out": out}):
        pass
    assert json.loads((out / RECORD_FILE).read_text(encoding="utf-8"))["status"] == "ok"


def test_unreadable_records_are_counted_not_fatal(registry, tmp_path):
    with recording("index", {"out": tmp_path}):
        pass
    (registry.path / "records" / "broken.json").write_text("{not json", encoding="utf-8")
    result = odqa("runs", "list")
    assert result.exit_code == 0 and "1 unreadable record(s) skipped: broken.json" in result.stderr
    assert "no run 'nothing-like-this'" in refused(odqa("runs", "show", "nothing-like-this"))


def test_scoring_a_model_on_its_training_data_is_flagged(tmp_path, korean_qa_file):
    from odqa.training.loop import LoopSettings
    from odqa.training.task import training_record

    model = tmp_path / "reader"
    model.mkdir()
    record = training_record(LoopSettings(), {"train": [str(korean_qa_file)], "eval": None}, {})
    (model / "odqa_reader.json").write_text(json.dumps(record), encoding="utf-8")
    assert "was trained on" in training_overlap(model, korean_qa_file)
    # another file holding some of the same questions: caught by id while the training file is there
    data = json.loads(korean_qa_file.read_text(encoding="utf-8"))
    ids = {qa["id"] for article in data["data"] for paragraph in article["paragraphs"] for qa in paragraph["qas"]}
    other = tmp_path / "dev.json"
    other.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    warning = training_overlap(model, other, ids | {"unseen"})
    assert f"{len(ids)} of the {len(ids) + 1} questions scored (by id)" in warning
    assert training_overlap(model, other, {"unseen"}) is None
    assert training_overlap(tmp_path, other, ids) is None  # no record: nothing to say


def test_runs_go_to_mlflow_when_asked(registry, tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("ODQA_MLFLOW_URI", uri)
    with recording("evaluate", {"k": 20, "out": tmp_path / "eval"}):
        log_metrics({"by_k": {"20": {"korquad": {"exact_match": 47.1}}}})
    (record,), _ = registry.records()
    client = mlflow.MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("odqa").experiment_id])
    assert run.data.metrics == {"by_k.20.korquad.exact_match": 47.1}
    assert run.data.params["k"] == "20" and run.data.tags["mlflow.runName"] == record["id"]
    assert run.info.status == "FINISHED"
