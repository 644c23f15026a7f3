"""Korean answer clean-up on character spans: trailing particles and unbalanced brackets."""

import pytest

pytest.importorskip("mecab")

from odqa.reader.postprocess import clean_span, particle_length, repair_brackets


def cleaned(context: str, answer: str, analyzers=("mecab",)) -> str:
    start = context.index(answer)
    a, b = clean_span(context, start, start + len(answer), analyzers=analyzers)
    return context[a:b]


@pytest.mark.parametrize(
    "context, predicted, expected",
    [
        ("조선의 왕 세종은 훈민정음을 창제하였다.", "세종은", "세종"),
        ("조선의 왕 세종은 훈민정음을 창제하였다.", "훈민정음을", "훈민정음"),
        ("그는 서울에서는 유명하다.", "서울에서는", "서울"),  # two particles in a row
        ("그는 《삼국사기》를 읽었다.", "《삼국사기》를", "《삼국사기》"),  # a particle after a closing bracket
        ("1443년에 만들었다.", "1443년에", "1443년"),
        ("그는 밥을 먹었다.", "먹었다", "먹었다"),  # a verb ending is not a particle
        ("The answer is Paris.", "Paris.", "Paris."),  # not Korean: untouched
    ],
)
def test_trailing_particles_are_stripped(context, predicted, expected):
    assert cleaned(context, predicted) == expected


@pytest.mark.parametrize("analyzer", ["mecab", "kiwi"])
@pytest.mark.parametrize(
    "context, predicted, expected",
    [
        ("탄수화물은 시트르산 회로에서 분해된다.", "시트르산 회로", "시트르산 회로"),  # 회로 is one noun, not 회 + 로
        ("고양이의 꼬리는 길다.", "고양이의", "고양이"),  # alone, 의 reads as a noun
        ("카운터 위주의 상점이었는데 곧 바뀌었다.", "카운터 위주의 상점이", "카운터 위주의 상점"),  # a copula
        ("그는 살기를 바랐다.", "살기를", "살기"),  # a nominalized verb keeps its ending
    ],
)
def test_particles_are_judged_in_their_sentence(context, predicted, expected, analyzer):
    pytest.importorskip({"mecab": "mecab", "kiwi": "kiwipiepy"}[analyzer])
    assert cleaned(context, predicted, analyzers=(analyzer,)) == expected


@pytest.mark.parametrize(
    "context, predicted, expected",
    [
        ("책 《삼국사기》가 있다.", "《삼국사기", "《삼국사기》"),  # partner right after the span: taken in
        ("책 《삼국사기》가 있다.", "삼국사기》", "《삼국사기》"),
        ("그 (수도) 서울", "(수도", "(수도)"),
        ("서울 (대한민국의 수도", "서울 (대한민국의", "서울"),  # lone opener inside: cut before it
        ("「금강경」과", "금강경」", "「금강경」"),
    ],
)
def test_brackets_are_balanced(context, predicted, expected):
    start = context.index(predicted)
    a, b = repair_brackets(context, start, start + len(predicted))
    assert context[a:b] == expected


def test_analyzers_vote():
    pytest.importorskip("kiwipiepy")
    assert particle_length("세종은", "mecab") == 1 == particle_length("세종은", "kiwi")
    assert cleaned("조선의 왕 세종은 훈민정음을 창제하였다.", "세종은", analyzers=("mecab", "kiwi")) == "세종"
