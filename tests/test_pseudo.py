"""Pseudo-labels: questions answered end to end, the confident answers kept as a SQuAD-format
training file, with the kept labels' precision when the questions have gold answers."""

import json

import pytest

pytest.importorskip("torch")

from odqa.errors import OdqaError


def pipeline_of(index, *readers):
    from odqa.pipeline import Pipeline, PipelineConfig

    reader = [str(r) for r in readers]
    return Pipeline(PipelineConfig(index=str(index), reader=reader[0] if len(reader) == 1 else reader, k=3))


def test_confident_answers_become_training_data(korean_docs_index, korean_reader, korean_qa_file, tmp_path):
    from odqa.io.questions import read_questions
    from odqa.io.squad import read_qa_examples
    from odqa.pseudo import PseudoLabelConfig, answer_and_judge, kept_rows, report, squad_file

    questions = read_questions(korean_qa_file)
    settings = PseudoLabelConfig(min_score=0.0)
    rows = answer_and_judge(
        pipeline_of(korean_docs_index, korean_reader), questions, settings, batch_size=3, quiet=True
    )
    assert [row["id"] for row in rows] == [q.id for q in questions]
    kept = kept_rows(rows, settings)
    assert len(kept) == len(rows) and all(row["agreement"] == 1.0 for row in rows)  # one reader agrees with itself

    path = tmp_path / "pseudo.json"
    path.write_text(json.dumps(squad_file(kept), ensure_ascii=False), encoding="utf-8")
    examples = read_qa_examples(path, require_answers=True)  # what train-reader reads
    for example, row in zip(examples, kept):
        answer = example.answers[0]
        assert example.context[answer.start : answer.end] == row["answer"].text == answer.text
        assert example.context == row["passage"].text

    confident = kept_rows(rows, PseudoLabelConfig(min_score=0.9))
    assert all(row["probability"] >= 0.9 for row in confident) and len(confident) <= len(kept)
    summary = report(rows, kept, settings, [str(korean_reader)])
    assert summary["questions"] == summary["kept"] == 8
    assert summary["precision"]["exact_match"] == summary["all_answers"]["exact_match"] >= 75


def test_the_report_gives_precision_by_threshold_on_labelled_questions():
    """A labelled set treated as unlabelled: how precise the kept labels are at each threshold,
    the most confident tenth first, so a user can choose --min-score for their unlabelled questions."""
    from odqa.pseudo import PseudoLabelConfig, kept_rows, report
    from odqa.types import Answer

    def row(i, probability, right):
        text = "세종" if right else "태조"
        answer = Answer(text, 0.0, 0.0, passage_id=i, passage_rank=1, title="", doc_id=str(i), start=0, end=len(text))
        return {"id": f"q{i}", "answer": answer, "probability": probability, "agreement": 1.0, "gold": ["세종"]}

    # the 5 most confident answers are right, the next 5 wrong, the last question unanswered
    rows = [row(i, 0.9 - 0.05 * i, right=i < 5) for i in range(10)]
    rows.append({"id": "q10", "answer": None, "probability": 0.0, "agreement": 0.0, "gold": ["세종"]})
    settings = PseudoLabelConfig(min_score=0.6)
    summary = report(rows, kept_rows(rows, settings), settings, ["reader"])
    assert summary["kept"] == 7 and summary["precision"]["exact_match"] == pytest.approx(100 * 5 / 7)
    curve = summary["by_min_score"]
    assert [point["min_score"] for point in curve] == pytest.approx([0.9 - 0.05 * i for i in range(10)])
    assert [point["questions"] for point in curve] == list(range(1, 11))  # the unanswered one never counts
    assert [point["exact_match"] for point in curve] == pytest.approx([100.0] * 5 + [100 * 5 / n for n in range(6, 11)])


def test_a_killed_run_resumes_and_other_runs_are_refused(korean_docs_index, korean_reader, korean_qa_file, tmp_path):
    from odqa.io.questions import read_questions
    from odqa.pseudo import PseudoLabelConfig, answer_and_judge

    questions = read_questions(korean_qa_file)
    settings = PseudoLabelConfig(min_score=0.0)
    pipeline = pipeline_of(korean_docs_index, korean_reader)
    fresh = answer_and_judge(pipeline, questions, settings, batch_size=3, quiet=True)

    partial = tmp_path / "pseudo.partial.jsonl"
    answer_and_judge(pipeline, questions[:5], settings, batch_size=3, quiet=True, partial=partial)  # then killed
    resumed = answer_and_judge(pipeline, questions, settings, batch_size=3, quiet=True, partial=partial)
    assert resumed == fresh  # answers, probabilities, agreement, passages and gold, read back exactly
    lines = partial.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 + len(questions)  # the settings line, then each question answered once

    other = pipeline_of(korean_docs_index, korean_reader)
    other.config.k = 2
    with pytest.raises(OdqaError, match=r"holds answers from another run \(changed: pipeline\.k\)"):
        answer_and_judge(other, questions, settings, quiet=True, partial=partial)
    answer_and_judge(other, questions[:2], settings, quiet=True, partial=partial, restart=True)
    assert len(partial.read_text(encoding="utf-8").splitlines()) == 1 + 2


def test_several_readers_must_agree(korean_docs_index, korean_reader, tiny_encoder, korean_qa_file):
    from odqa.io.questions import read_questions
    from odqa.pseudo import PseudoLabelConfig, answer_and_judge, kept_rows

    # the trained reader weighted far above an untrained one: the answers are the trained reader's,
    # and the untrained one rarely gives the same answer on its own
    pipeline = pipeline_of(korean_docs_index, korean_reader, tiny_encoder)
    pipeline.config.reader_weights = [1.0, 0.01]
    rows = answer_and_judge(pipeline, read_questions(korean_qa_file), PseudoLabelConfig(), quiet=True)
    assert {row["agreement"] for row in rows} <= {0.0, 0.5, 1.0}
    both = kept_rows(rows, PseudoLabelConfig(min_score=0.0, min_agreement=1.0))
    half = kept_rows(rows, PseudoLabelConfig(min_score=0.0, min_agreement=0.5))
    assert len(both) < len(half) and all(row["agreement"] == 1.0 for row in both)
    with pytest.raises(OdqaError, match="min_agreement must be between 0 and 1"):
        PseudoLabelConfig(min_agreement=2).check()


@pytest.mark.slow  # odqa processes, each importing torch
def test_the_pseudo_label_command(korean_docs_index, korean_reader, korean_qa_file, tmp_path):
    from test_cli import odqa

    out = tmp_path / "pseudo.json"
    args = ["pseudo-label", "--questions", korean_qa_file, "--index", korean_docs_index, "--reader", korean_reader]
    run = odqa(*args, "--out", out, "--min-score", "0.3", "-q")
    assert run.returncode == 0, run.stderr
    assert "kept" in run.stdout and "against the gold answers the kept ones score EM" in run.stdout
    summary = json.loads((tmp_path / "pseudo.report.json").read_text(encoding="utf-8"))
    assert summary["kept"] == len(json.loads(out.read_text(encoding="utf-8"))["data"])

    nothing = tmp_path / "none.json"
    run = odqa(*args, "--out", nothing, "--min-score", "1", "-q")
    assert run.returncode == 2 and "nothing written" in run.stderr and run.stderr.count("\n") == 1
    assert not nothing.exists() and not (tmp_path / "none.report.json").exists()
    # the answers stay for a rerun with a lower threshold, which reuses them and then removes them
    assert (tmp_path / "none.partial.jsonl").exists()
    run = odqa(*args, "--out", nothing, "--min-score", "0.3", "-q")
    assert run.returncode == 0, run.stderr
    assert json.loads(nothing.read_text(encoding="utf-8")) == json.loads(out.read_text(encoding="utf-8"))
    assert not (tmp_path / "none.partial.jsonl").exists()
