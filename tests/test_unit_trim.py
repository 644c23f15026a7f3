"""The unit trim: an answer to a question that asks for a number in a unit ("몇 명…?", "…해는?")
ends after that unit, so "1950년 6월 25일 새벽 4시" answers "한국 전쟁이 시작된 해는?" as "1950년"."""

import pytest

from odqa.reader.postprocess import asked_unit, trim_to_unit


@pytest.mark.parametrize(
    "question, unit",
    [
        ("한국 전쟁이 시작된 해는?", "년"),
        ("방탄소년단은 몇 년도에 데뷔했나?", "년"),
        ("개포주공1단지아파트가 세워진 연도는?", "년"),
        ("사고로 몇 명이 숨졌는가?", "명"),
        ("한러 수교는 몇주년을 맞았나?", "주년"),  # the longest counter wins over 주 and 년
        ("재위 기간은 몇 개월인가?", "개월"),
        ("정도전의 견해는?", None),  # 견해 is not a year: 해 must be its own word
        ("대한민국의 수도는?", None),
        ("몇 년 몇 월에 졸업하였는가?", None),  # several units asked: nothing to trim to
        ("2010년 지방선거는 몇 월 며칠에 치러졌는가?", None),
    ],
)
def test_the_unit_a_question_asks_for(question, unit):
    assert asked_unit(question) == unit


def trimmed(context: str, question: str, answer: str | None = None) -> str:
    answer = answer or context
    start = context.index(answer)
    a, b = trim_to_unit(context, start, start + len(answer), asked_unit(question), question)
    return context[a:b]


@pytest.mark.parametrize(
    "context, question, expected",
    [
        ("1950년 6월 25일 새벽 4시", "한국 전쟁이 시작된 해는?", "1950년"),
        ("58명의 승객", "몇 명이 구조되었나?", "58명"),  # a particle after the unit: still cut there
        ("2013년도에 데뷔", "몇 년도에 데뷔했나?", "2013년도"),
        ("3천 명 이상", "몇 명이 모였나?", "3천 명 이상"),  # a qualified number is the answer
        ("1950년 이후", "시작된 해는?", "1950년 이후"),
        ("1869년부터 1875년까지", "보직이 끝난 해는?", "1869년부터 1875년까지"),  # a range
        ("1950년대 후반", "받아들이기 시작한 해는?", "1950년대 후반"),  # 년대 is another word
        ("1433년(세종 15년)", "정벌 간 년도는?", "1433년(세종 15년)"),
        ("4번 타자", "상무 야구단 시절 몇 번 타자였나?", "4번 타자"),  # the question names the next word
        ("38억 년", "빅뱅 이후 몇 년인가?", "38억 년"),  # nothing past the unit
        ("6월 25일 1950년", "시작된 해는?", "6월 25일 1950년"),  # does not begin with a year
    ],
)
def test_an_answer_ends_after_the_asked_unit(context, question, expected):
    assert trimmed(context, question) == expected


def test_offsets_stay_inside_the_context():
    context = "전쟁은 1950년 6월 25일 새벽 4시에 시작되었다."
    assert trimmed(context, "한국 전쟁이 시작된 해는?", "1950년 6월 25일 새벽 4시") == "1950년"


def test_a_span_that_takes_the_space_before_it_is_trimmed_too():
    context = "전쟁은 1950년 6월 25일 새벽 4시에 시작되었다."
    start = context.index(" 1950")  # SentencePiece's "▁1950": the offsets include the space
    a, b = trim_to_unit(context, start, start + len(" 1950년 6월 25일"), "년", "시작된 해는?")
    assert (a, context[a:b].strip()) == (start, "1950년")
