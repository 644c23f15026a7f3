"""Decoding equals a brute-force search over all spans; aggregation across windows and passages."""

import re

import numpy as np
import pytest

from odqa.reader.decode import aggregate, no_answer_wins, token_lines, top_spans
from odqa.types import Span


def brute_force(start, end, offsets, mask, n, max_len, mode, lines=None):
    """Every (s, e) inside the context with e - s < max_len (on one line when `lines` are given),
    scored the slow, obvious way."""
    out = []
    for w in range(start.shape[0]):
        valid = mask[w].astype(bool)
        if mode == "prob":

            def log_softmax(x):
                x = x[valid]
                return x - x.max() - np.log(np.exp(x - x.max()).sum())

            s_scores = np.full(start.shape[1], -np.inf)
            e_scores = np.full(start.shape[1], -np.inf)
            s_scores[valid], e_scores[valid] = log_softmax(start[w]), log_softmax(end[w])
        else:
            s_scores, e_scores = start[w], end[w]
        spans = []
        for s in range(start.shape[1]):
            for e in range(s, min(s + max_len, start.shape[1])):
                one_line = lines is None or lines[w, s, 0] == lines[w, e, 1]
                if offsets[w, s, 0] >= 0 and offsets[w, e, 0] >= 0 and one_line:
                    spans.append((float(s_scores[s] + e_scores[e]), s, e))
        spans.sort(key=lambda t: -t[0])
        out.append(spans[:n])
    return out


@pytest.mark.parametrize("mode", ["logits", "prob"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_top_spans_equals_brute_force(mode, seed):
    rng = np.random.default_rng(seed)
    windows, tokens = 4, 40
    start = rng.normal(size=(windows, tokens)).astype(np.float32)
    end = rng.normal(size=(windows, tokens)).astype(np.float32)
    mask = np.ones((windows, tokens), dtype=np.int64)
    mask[1, 30:] = 0  # a shorter window, padded
    offsets = np.stack([np.arange(tokens) * 3, np.arange(tokens) * 3 + 2], axis=-1)[None].repeat(windows, 0)
    offsets[:, :8] = -1  # [CLS] + question
    offsets[1, 29:] = -1  # [SEP] + padding
    offsets[2, 20] = -1  # a hole inside the context
    got = top_spans(start, end, offsets, mask, n=10, max_answer_tokens=5, mode=mode)
    want = brute_force(start, end, offsets, mask, 10, 5, mode)
    for w in range(windows):
        assert [(s, e) for _, s, e in want[w]] == list(zip(got.start[w], got.end[w]))
        np.testing.assert_allclose(got.score[w], [score for score, _, _ in want[w]], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["logits", "prob"])
def test_spans_stay_on_one_line(mode):
    rng = np.random.default_rng(3)
    context = "목성\n목성은 태양계에서 가장 큰 행성이다.\n\n토성은 두 번째로 크다."
    words = [(m.start(), m.end()) for m in re.finditer(r"\S+", context)]
    offsets = np.array([[-1, -1], *words, [-1, -1]])[None].repeat(3, 0)
    lines = np.stack([token_lines(context, o) for o in offsets])
    assert lines[0, :, 0].tolist() == [-1, 0, 1, 1, 1, 1, 1, 3, 3, 3, 3, -1]  # the title, a sentence, a blank line
    tokens = offsets.shape[1]
    start = rng.normal(size=(3, tokens)).astype(np.float32)
    end = rng.normal(size=(3, tokens)).astype(np.float32)
    start[0, 1], end[0, 2] = 9, 9  # the best span would run from the title into the text
    mask = np.ones((3, tokens), dtype=np.int64)
    got = top_spans(start, end, offsets, mask, n=8, max_answer_tokens=6, mode=mode, lines=lines)
    want = brute_force(start, end, offsets, mask, 8, 6, mode, lines)
    for w in range(3):
        assert [(s, e) for _, s, e in want[w]] == list(zip(got.start[w], got.end[w]))
        np.testing.assert_allclose(got.score[w], [score for score, _, _ in want[w]], rtol=1e-5, atol=1e-5)
    assert (1, 2) not in zip(got.start[0], got.end[0])
    free = top_spans(start, end, offsets, mask, n=1, max_answer_tokens=6, mode=mode)
    assert (free.start[0, 0], free.end[0, 0]) == (1, 2)  # without lines it crosses


def test_top_spans_pads_with_none_when_few_spans_exist():
    start = np.zeros((1, 4), np.float32)
    offsets = np.array([[[-1, -1], [0, 2], [3, 5], [-1, -1]]])
    got = top_spans(start, start, offsets, np.ones((1, 4)), n=5, max_answer_tokens=30)
    assert sorted(zip(got.start[0][:3], got.end[0][:3])) == [(1, 1), (1, 2), (2, 2)]
    assert list(got.start[0][3:]) == [-1, -1] and np.isinf(got.score[0][3:]).all()


def test_prob_scores_are_comparable_across_windows():
    # Window B has larger logits everywhere but a flat distribution; window A is confident.
    a = np.array([[0, 10, 0, 0]], np.float32)
    b = np.array([[0, 20, 20, 20]], np.float32)
    offsets = np.array([[[-1, -1], [0, 1], [2, 3], [4, 5]]])
    mask = np.ones((1, 4))
    by_logits = [top_spans(x, x, offsets, mask, n=1, mode="logits").score[0, 0] for x in (a, b)]
    by_prob = [top_spans(x, x, offsets, mask, n=1, mode="prob").score[0, 0] for x in (a, b)]
    assert by_logits[1] > by_logits[0] and by_prob[0] > by_prob[1]


def test_aggregate_dedups_windows_and_merges_texts():
    spans = [
        Span("세종", 0, 2, -1.0, 0),
        Span("세종", 0, 2, -0.5, 0),  # the same place seen from an overlapping window
        Span("세종", 10, 12, -1.2, 1),  # the same text in another passage
        Span("태종", 4, 6, -0.7, 0),
        Span(" ", 3, 4, 5.0, 0),  # blank spans are never answers
    ]
    plain = aggregate(spans, n=5)
    assert [(s.text, s.score) for s in plain] == [("세종", -0.5), ("태종", -0.7), ("세종", -1.2)]
    assert [s.text for s in aggregate(spans, merge="max")] == ["세종", "태종"]
    summed = aggregate(spans, merge="sum", mode="prob")
    assert summed[0].text == "세종" and summed[0].score == pytest.approx(np.log(np.exp(-0.5) + np.exp(-1.2)))
    assert (summed[0].start, summed[0].context_index) == (0, 0)


def test_no_answer_rule():
    best = Span("x", 0, 1, 2.0)
    assert no_answer_wins(best, [3.0, 2.5]) and not no_answer_wins(best, [3.0, 1.0])
    assert not no_answer_wins(best, [2.5], threshold=1.0) and no_answer_wins(None, [0.0])
