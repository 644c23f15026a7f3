"""Retrieve → read → answer on a tiny corpus with a tiny reader; prediction files; attribution."""

import json

import pytest

pytest.importorskip("torch")

from conftest import KOREAN_DOCS, KOREAN_QA
from odqa.e2e import attribute, choose_setting, evaluate_end_to_end, predict_file, run_settings, tune_pipeline
from odqa.errors import OdqaError
from odqa.io.questions import Question
from odqa.pipeline import Pipeline, PipelineConfig


@pytest.fixture(scope="module")
def pipeline(korean_docs_index, korean_reader):
    return Pipeline(PipelineConfig(index=str(korean_docs_index), reader=str(korean_reader), k=3)).warm_up()


def test_ask_answers_with_evidence_and_offsets(pipeline):
    result = pipeline.ask("훈민정음을 창제한 왕은?")
    answer = result.answer
    assert answer.text == "세종" and answer.title == "세종" and answer.doc_id == "5"
    passage = next(p for p in result.passages if p.passage_id == answer.passage_id)
    assert passage.text[answer.start : answer.end] == "세종"
    in_body = answer.start >= pipeline.index.passages[answer.passage_id].body_start
    if in_body:  # the span is in the passage body: it also places the answer in the document
        assert KOREAN_DOCS[4]["text"][answer.doc_start : answer.doc_end] == "세종"
    else:  # in the prepended title, which is not part of the document's text
        assert answer.doc_start is None and answer.doc_end is None
    assert 1 <= len(result.passages) <= 3 and result.passages[0].rank == 1
    assert [a.score for a in result.nbest] == sorted((a.score for a in result.nbest), reverse=True)
    assert result.timings["read_ms"] > 0


def test_an_empty_batch_has_no_answers(pipeline):
    assert pipeline.ask_batch([]) == []


def test_n_best_per_call_goes_beyond_the_configured_default(pipeline):
    question = "훈민정음을 창제한 왕은?"
    assert len(pipeline.ask(question).nbest) == pipeline.config.n_best == 5
    more = pipeline.ask(question, n_best=12)
    assert len(more.nbest) == 12 and more.text == pipeline.ask(question).text


def test_batch_answers_match_single_answers(pipeline):
    questions = [q for _, q, _ in KOREAN_QA[:4]]
    batch = [r.text for r in pipeline.ask_batch(questions)]
    assert batch == [pipeline.ask(q).text for q in questions]
    assert sum(text == gold for text, (_, _, gold) in zip(batch, KOREAN_QA)) >= 3


def test_config_round_trips(tmp_path, korean_docs_index):
    config = PipelineConfig(index=str(korean_docs_index), reader="runs/r", k=7, reader_options={"mode": "logits"})
    path = tmp_path / "pipeline.json"
    path.write_text(json.dumps(config.to_dict()))
    assert PipelineConfig.from_file(path) == config
    with pytest.raises(OdqaError, match="bad pipeline config"):
        PipelineConfig.from_dict({"index": "x", "reader": "y", "k": 0})
    with pytest.raises(OdqaError, match="index not found"):
        Pipeline(PipelineConfig(index=str(tmp_path / "none"), reader="r")).warm_up()


def test_predict_writes_competition_files_and_resumes(pipeline, tmp_path):
    questions = [Question(f"q{i}", q) for i, (_, q, _) in enumerate(KOREAN_QA)]
    out = tmp_path / "preds"
    out.mkdir()
    # a previous run with these settings was killed after two questions, mid-way through writing a third line
    done = [
        {"settings": run_settings(pipeline)},
        {"id": "q0", "answer": "미리 쓴 답", "nbest": [], "passages": []},
        {"id": "q1", "answer": "두 번째", "nbest": [], "passages": []},
    ]
    (out / "partial.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in done) + '{"id": "q2", "ans'
    )
    predictions = predict_file(pipeline, questions, out, batch_size=3, quiet=True)
    assert list(predictions) == [q.id for q in questions]
    assert predictions["q0"] == "미리 쓴 답"  # kept from the interrupted run, not recomputed
    saved = json.loads((out / "predictions.json").read_text(encoding="utf-8"))
    assert saved == predictions and not (out / "partial.jsonl").exists()
    retrieved = json.loads((out / "retrieved.json").read_text(encoding="utf-8"))
    assert 1 <= len(retrieved["q3"]) <= 3 and {"passage_id", "score", "title", "doc_id"} <= set(retrieved["q3"][0])
    nbest = json.loads((out / "nbest_predictions.json").read_text(encoding="utf-8"))
    assert nbest["q3"][0]["text"] == predictions["q3"]


@pytest.mark.parametrize(
    "exact, f1, retrieved, category",
    [
        (1.0, 1.0, True, "correct"),
        (0.0, 0.8, True, "near_miss"),
        (0.0, 0.0, False, "retrieval_miss"),
        (0.0, 0.3, True, "reading_miss"),
        (0.0, 0.6, False, "near_miss"),
    ],
)
def test_error_attribution(exact, f1, retrieved, category):
    assert attribute(exact, f1, retrieved) == category


def test_evaluate_end_to_end(pipeline):
    questions = [Question(f"q{i}", q, (a,)) for i, (_, q, a) in enumerate(KOREAN_QA)]
    questions.append(Question("miss", "파리의 에펠탑은 누가 설계했나?", ("귀스타브 에펠",)))  # not in the corpus
    result = evaluate_end_to_end(pipeline, questions, ks=[1, 3], metrics=["korquad", "squad"], quiet=True)
    assert result["questions"] == 9 and set(result["by_k"]) == {1, 3}
    assert sum(result["attribution"].values()) == 9
    details = {d["id"]: d for d in result["per_question"]}
    assert details["miss"]["category"] == "retrieval_miss" and details["miss"]["first_answer_rank"] is None
    assert result["metrics"]["korquad"]["exact_match"] == pytest.approx(100 * result["attribution"]["correct"] / 9)
    assert result["metrics"]["korquad"]["exact_match"] >= 50


def test_tuning_chooses_k_and_the_retriever_weight_by_exact_match(pipeline):
    questions = [Question(f"q{i}", q, (a,)) for i, (_, q, a) in enumerate(KOREAN_QA)]
    tuned = tune_pipeline(pipeline, questions, ks=[1, 3], weights=[0.0, 0.5], quiet=True, rule="best")
    grid = tuned["em_korquad"]
    assert set(grid) == {"k=1 w=0.0", "k=1 w=0.5", "k=3 w=0.0", "k=3 w=0.5"}
    assert tuned["exact_match"] == max(grid.values()) == tuned["best"]["exact_match"]
    chosen = tuned["chosen"]
    assert grid[f"k={chosen['k']} w={chosen['retriever_weight']}"] == tuned["exact_match"]
    best_k = [int(key.split()[0][2:]) for key, em in grid.items() if em == tuned["exact_match"]]
    assert chosen["k"] == min(best_k)  # ties go to the cheaper reading
    assert pipeline.config.retriever_weight == 0.0 and pipeline.config.k == 3  # the pipeline is left as it was
    # a best pair at the largest value tried says so: the search may have stopped short
    assert tuned["at_edge"] == [
        n for n, v, top in (("k", chosen["k"], 3), ("retriever_weight", chosen["retriever_weight"], 0.5)) if v == top
    ]
    assert tune_pipeline(pipeline, questions, ks=[3], weights=[0.5], quiet=True)["at_edge"] == []  # nothing to widen

    # the default, the one-standard-error rule: the fewest passages whose EM is within one standard error
    # of the best (the per-question spread of the best pair over √n), at that k's best weight
    one_se = tune_pipeline(pipeline, questions, ks=[1, 3], weights=[0.0, 0.5], quiet=True)
    assert one_se["rule"] == "one-se" and one_se["em_korquad"] == grid and one_se["best"] == tuned["best"]
    best = tuned["exact_match"] / 100
    assert one_se["standard_error"] == pytest.approx(100 * (best * (1 - best) / len(questions)) ** 0.5)
    best_em_at = {k: max(em for key, em in grid.items() if key.startswith(f"k={k} ")) for k in (1, 3)}
    fewest = min(k for k, em in best_em_at.items() if em >= 100 * best - one_se["standard_error"])
    assert one_se["chosen"]["k"] == fewest <= tuned["chosen"]["k"]
    assert one_se["exact_match"] == best_em_at[fewest]
    with pytest.raises(OdqaError, match="unknown tuning rule 'cheapest'"):
        tune_pipeline(pipeline, questions, quiet=True, rule="cheapest")

    # every cell is what evaluating with those settings scores
    for k, w in [(1, 0.5), (3, 0.0)]:
        config = pipeline.config.to_dict() | {"k": k, "retriever_weight": w}
        evaluated = evaluate_end_to_end(Pipeline(PipelineConfig.from_dict(config)), questions, quiet=True)
        assert evaluated["metrics"]["korquad"]["exact_match"] == pytest.approx(grid[f"k={k} w={w}"])

    with pytest.raises(OdqaError, match="no question has gold answers to tune on"):
        tune_pipeline(pipeline, [Question("q", "대한민국의 수도는?")], quiet=True)


def test_the_one_standard_error_rule_reads_the_fewest_passages_that_score_within_noise_of_the_best():
    def right(n):  # n of 10 questions answered exactly
        return [1.0] * n + [0.0] * (10 - n)

    scores = {(1, 0.0): right(5), (1, 1.0): right(5), (3, 0.0): right(4), (3, 1.0): right(6),
              (5, 0.0): right(7), (5, 1.0): right(7)}  # fmt: skip
    # the best EM (70) first, then the smaller weight of a tie; its standard error √(.7 × .3 / 10) = 14.5 points
    assert choose_setting(scores, "best") == ((5, 0.0), (5, 0.0), pytest.approx(14.49, abs=0.01))
    # within 70 - 14.5: only k = 3 at weight 1 (60) reads fewer passages; k = 1 (50) is too far behind
    assert choose_setting(scores)[0] == (3, 1.0)
    scores[(1, 1.0)] = right(6)  # now k = 1 is within it too, at weight 1 only
    assert choose_setting(scores)[0] == (1, 1.0)
    # no spread at all: the cheapest pair of the tie, whichever rule
    flat = {pair: right(0) for pair in scores}
    assert choose_setting(flat, "best") == choose_setting(flat) == ((1, 0.0), (1, 0.0), 0.0)


def test_predict_refuses_to_resume_a_run_with_other_settings(pipeline, korean_docs_index, korean_reader, tmp_path):
    questions = [Question(f"q{i}", q) for i, (_, q, _) in enumerate(KOREAN_QA[:3])]
    out = tmp_path / "preds"
    out.mkdir()
    (out / "partial.jsonl").write_text(
        json.dumps({"settings": run_settings(pipeline)}) + "\n" + json.dumps({"id": "q0", "answer": "옛 답"}) + "\n"
    )
    other = Pipeline(PipelineConfig(index=str(korean_docs_index), reader=str(korean_reader), k=2))
    with pytest.raises(OdqaError, match=r"another run \(changed: pipeline\.k\)"):
        predict_file(other, questions, out, quiet=True)
    predictions = predict_file(other, questions, out, quiet=True, restart=True)
    assert predictions["q0"] != "옛 답" and set(predictions) == {"q0", "q1", "q2"}
    (out / "partial.jsonl").write_text(json.dumps({"id": "q0", "answer": "옛 답"}) + "\n")  # an older odqa's file
    with pytest.raises(OdqaError, match="no settings line"):
        predict_file(other, questions, out, quiet=True)


def test_no_answer_scores_at_a_smaller_k_come_from_those_passages_only(pipeline, korean_docs_index, korean_reader):
    """Scoring at k=1 from one reading of k=3 equals a pipeline that reads one passage, even when
    a later passage's no-answer score would flip the decision."""
    questions = [Question(f"q{i}", q, (a,)) for i, (_, q, a) in enumerate(KOREAN_QA)]
    nulls = pipeline.reader.read_candidates(["누구?"], [["세종은 한글을 만들었다.", " ", "김치"]])[1][0]
    assert len(nulls) == 3 and nulls[1] == float("inf")  # one no-answer score per passage; none for a blank one
    texts = [q.text for q in questions]
    hits = pipeline.retrieve(texts, 3)
    candidates, nulls = pipeline.reader.read_candidates(texts, [[h.passage.text for h in row] for row in hits])
    checked = 0
    for question, row, spans, null in zip(questions, hits, candidates, nulls):
        first = pipeline.rank(question.text, row[:1], [s for s in spans if s.context_index < 1], null[:1])
        if not first.nbest or min(null) >= null[0]:
            continue
        # a threshold between the first passage's no-answer score and a later, lower one
        threshold = (null[0] + min(null)) / 2 - first.nbest[0].reader_score
        options = {"no_answer": True, "null_threshold": threshold}
        by_k = {}
        for k in (1, 3):
            config = PipelineConfig(
                index=str(korean_docs_index), reader=str(korean_reader), k=k, reader_options=options
            )
            by_k[k] = evaluate_end_to_end(Pipeline(config), [question], ks=[1], quiet=True)
        assert by_k[3]["by_k"][1] == by_k[1]["metrics"]
        assert by_k[1]["per_question"][0]["prediction"] == ""  # the first passage's own no-answer score wins
        checked += 1
    assert checked >= 1


def test_retriever_weight_adds_the_passage_score(korean_docs_index, korean_reader):
    config = PipelineConfig(index=str(korean_docs_index), reader=str(korean_reader), k=3, retriever_weight=0.5)
    result = Pipeline(config).ask("훈민정음을 창제한 왕은?")
    passage_score = {p.passage_id: p.score for p in result.passages}
    for answer in result.nbest:
        assert answer.score == pytest.approx(answer.reader_score + 0.5 * passage_score[answer.passage_id], rel=1e-5)
    assert [a.score for a in result.nbest] == sorted((a.score for a in result.nbest), reverse=True)


@pytest.mark.parametrize("threshold, answered", [(-1e9, False), (1e9, True)])
def test_no_answer_end_to_end(korean_docs_index, korean_reader, tmp_path, threshold, answered):
    """With no-answer scoring the pipeline may answer nothing (an empty prediction) while still
    listing its candidates; the threshold moves that decision."""
    options = {"no_answer": True, "null_threshold": threshold}
    config = PipelineConfig(index=str(korean_docs_index), reader=str(korean_reader), k=3, reader_options=options)
    pipeline = Pipeline(config)
    result = pipeline.ask("훈민정음을 창제한 왕은?")
    assert (result.answer is not None) == answered and bool(result.text) == answered and result.nbest
    predictions = predict_file(pipeline, [Question("q", "훈민정음을 창제한 왕은?")], tmp_path, quiet=True)
    assert predictions == {"q": "세종" if answered else ""}


def test_yaml_config_equals_json(tmp_path, korean_docs_index):
    (tmp_path / "pipeline.yaml").write_text(
        f"index: {korean_docs_index}\nreader: runs/ko-reader\nk: 7\nreader_options:\n  mode: logits\n", encoding="utf-8"
    )
    config = PipelineConfig.from_file(tmp_path / "pipeline.yaml")
    assert config == PipelineConfig(
        index=str(korean_docs_index), reader="runs/ko-reader", k=7, reader_options={"mode": "logits"}
    )
    (tmp_path / "bad.yaml").write_text("index: [unclosed\n", encoding="utf-8")
    with pytest.raises(OdqaError, match="bad.yaml") as refused:
        PipelineConfig.from_file(tmp_path / "bad.yaml")
    assert "\n" not in str(refused.value) and "line 2, column 1" in str(refused.value)
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n", encoding="utf-8")
    with pytest.raises(OdqaError, match="list.yaml"):
        PipelineConfig.from_file(tmp_path / "list.yaml")


def test_a_reader_says_when_its_own_records_call_it_weak(korean_reader, weak_reader, tmp_path):
    from odqa.reader.model import reader_report

    good = reader_report(korean_reader)  # trained to the end, no evaluation set: nothing to warn about
    assert good["finished"] is True and good["eval"] is None and good["warning"] is None
    weak = reader_report(weak_reader)
    assert weak["eval"]["f1"] == 31.5 and (weak["step"], weak["total_steps"]) == (30, 100)
    assert "F1 31.5 / EM 20.0" in weak["warning"] and "stopped early at step 30 of 100" in weak["warning"]
    assert Pipeline(PipelineConfig(index="unused", reader=str(weak_reader))).reader_report() == weak
    assert reader_report("klue/roberta-base")["warning"] is None  # a hub id: nothing is known of it
    assert reader_report(tmp_path)["warning"] is None  # a folder without records


def test_answers_stay_on_one_line(korean_reader):
    from odqa.reader import Reader

    context = "훈민정음\n세종\n1443년\n한글\n창제\n조선"  # a word on each line
    question = "훈민정음을 창제한 왕은?"
    one_line = Reader.load(korean_reader, postprocess="none", merge="none")
    spans = one_line.read_candidates([question], [[context]])[0][0]
    assert spans and all("\n" not in span.text for span in spans)
    crossing = Reader.load(korean_reader, postprocess="none", merge="none", cross_lines=True)
    spans = crossing.read_candidates([question], [[context]])[0][0]
    assert any("\n" in span.text for span in spans)  # what the rule keeps out


def test_a_year_question_is_answered_with_the_year(korean_reader):
    pytest.importorskip("kiwipiepy")  # the Korean clean-up's particle analyzer
    from odqa.reader import Reader

    context = "한국 전쟁은 1950년 6월 25일 새벽 4시에 시작되었다."
    question = "한국 전쟁이 시작된 해는?"
    options = {"postprocess": "korean", "merge": "none", "n_best": 200}
    whole = Reader.load(korean_reader, unit_trim=False, **options).read_candidates([question], [[context]])[0][0]
    assert any(s.text.strip().startswith("1950년 ") for s in whole)  # the reader's spans run on past the year
    trimmed = Reader.load(korean_reader, **options).read_candidates([question], [[context]])[0][0]
    assert not any(s.text.strip().startswith("1950년 ") for s in trimmed)
    assert any(s.text.strip() == "1950년" for s in trimmed)
