"""Curriculum learning: easy items first, in an order that is deterministic and covers every item;
difficulties from lengths or from readers (`odqa difficulty`), used by `train-reader --curriculum`."""

import json

import numpy as np
import pytest

from odqa.errors import OdqaError
from odqa.training.curriculum import curriculum_batches, read_difficulty


def test_the_order_goes_easiest_bucket_first_and_covers_every_item():
    rng = np.random.default_rng(0)
    difficulty = rng.random(230)
    lengths = rng.integers(10, 300, size=230)
    batches = curriculum_batches(difficulty, lengths, batch_size=8, seed=3, buckets=5)
    order = np.concatenate(batches)
    assert sorted(order.tolist()) == list(range(230))  # every item once
    # item by item, each belongs to a bucket no easier than the one before
    bucket_of = np.empty(230, dtype=int)
    bucket_of[np.argsort(difficulty, kind="stable")] = np.arange(230) * 5 // 230
    assert np.all(np.diff(bucket_of[order]) >= 0)
    again = curriculum_batches(difficulty, lengths, batch_size=8, seed=3, buckets=5)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))  # deterministic
    other = curriculum_batches(difficulty, lengths, batch_size=8, seed=4, buckets=5)
    assert not all(np.array_equal(a, b) for a, b in zip(batches, other))  # but shuffled inside buckets


def test_a_fraction_of_an_epoch_orders_its_first_part_only():
    from odqa.training.batches import epoch_batches
    from odqa.training.loop import LoopSettings

    lengths = np.arange(100) % 17 + 5
    difficulty = np.linspace(1, 0, 100)  # the last items are the easiest
    settings = LoopSettings(batch_size=10, curriculum="length", curriculum_epochs=1.3)
    first = np.concatenate(epoch_batches(lengths, settings, 0, difficulty))
    assert first[:10].min() >= 80  # the easiest bucket opens the epoch
    second = epoch_batches(lengths, settings, 1, difficulty)
    head = np.concatenate(second[:3])  # 0.3 of the second epoch in curriculum order
    assert set(head) == set(range(70, 100))
    assert sorted(np.concatenate(second).tolist()) == list(range(100))
    third = np.concatenate(epoch_batches(lengths, settings, 2, difficulty))
    assert third[:10].min() < 80  # after the curriculum: shuffled as usual


def test_difficulty_files_are_read_in_either_shape_and_checked(tmp_path):
    as_json = tmp_path / "d.json"
    as_json.write_text(json.dumps({"q1": 0.5, "q2": 0}))
    as_jsonl = tmp_path / "d.jsonl"
    as_jsonl.write_text('{"id": "q1", "difficulty": 0.5}\n\n{"id": "q2", "difficulty": 0}\n')
    assert read_difficulty(as_json) == read_difficulty(as_jsonl) == {"q1": 0.5, "q2": 0.0}
    for name, text, message in [
        ("bad.json", '{"q1": "easy"}', "should be a finite number"),
        ("bad.json", '{"q1": NaN}', "should be a finite number"),
        ("bad.json", "{}", "holds no difficulties"),
        ("bad.json", "[0.5]", "should be a JSON object"),
        ("bad.json", "{oops", "is not JSON"),
        ("bad.jsonl", '{"id": "q1"}\n', "line 1"),
    ]:
        bad = tmp_path / name
        bad.write_text(text)
        with pytest.raises(OdqaError, match=message):
            read_difficulty(bad)
    with pytest.raises(OdqaError, match="difficulty file not found"):
        read_difficulty(tmp_path / "missing.json")


@pytest.mark.slow  # tiny trainings and odqa processes, each importing torch
def test_train_reader_follows_a_curriculum_from_readers(tmp_path, tiny_encoder, korean_qa_file, korean_reader):
    pytest.importorskip("accelerate")
    from test_cli import odqa

    difficulty = tmp_path / "difficulty.json"
    run = odqa("difficulty", "--reader", korean_reader, "--train", korean_qa_file, "--out", difficulty, "-q")
    assert run.returncode == 0, run.stderr
    scores = json.loads(difficulty.read_text(encoding="utf-8"))
    assert len(scores) == 8 and all(0 <= v <= 1 for v in scores.values())
    assert "EM 100.0" in run.stdout  # the reader was overfitted to these questions: all easy
    by_prob = tmp_path / "prob.json"
    run = odqa("difficulty", "--reader", korean_reader, "--reader", korean_reader, "--by", "gold-prob",
               "--train", korean_qa_file, "--out", by_prob, "-q")  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert all(v < 0.5 for v in json.loads(by_prob.read_text()).values())  # it gave the gold span most probability

    train = ["train-reader", "--model", tiny_encoder, "--train", korean_qa_file, "--max-steps", "2",
             "--batch-size", "4", "--max-length", "128", "--stride", "32", "-q"]  # fmt: skip
    run = odqa(*train, "--out", tmp_path / "r", "--curriculum", difficulty)
    assert run.returncode == 0, run.stderr
    saved = json.loads((tmp_path / "r" / "training_config.json").read_text())
    assert saved["curriculum"] == str(difficulty)
    # a resume with another order is refused, naming it
    other = odqa(*train, "--out", tmp_path / "r", "--curriculum", "length", "--max-steps", "4")
    assert other.returncode == 2 and "changed: curriculum" in other.stderr

    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps(dict(list(scores.items())[:3])))
    run = odqa(*train, "--out", tmp_path / "p", "--curriculum", partial)
    assert run.returncode == 2 and "no difficulty for 5 of the 8 training examples" in run.stderr
    run = odqa(*train, "--out", tmp_path / "n", "--curriculum", tmp_path / "nothing.json")
    assert run.returncode == 2 and "'length' or a difficulty file" in run.stderr
    assert not (tmp_path / "p" / "checkpoint-last").exists() and not (tmp_path / "n").exists()
