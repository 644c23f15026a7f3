"""The clean-up's gloss rule: a span that ends with a parenthetical after other text ends before it,
as annotators answer ("박규수(朴珪壽)" → "박규수")."""

import pytest

from odqa.reader.postprocess import drop_parenthetical


@pytest.mark.parametrize(
    "span, expected",
    [
        ("박규수(朴珪壽)", "박규수"),
        ("블록체인(blockchain)", "블록체인"),
        ("환씨(송 환공의 자손)", "환씨"),  # a gloss with spaces inside
        ("A(B(C))", "A"),  # nested: the opener of the final closer
        ("중앙일보 （中央日報）", "중앙일보"),  # full-width, and the space before it goes too
        ("(수도)", "(수도)"),  # nothing before the parenthetical: kept
        ("X (Y) Z", "X (Y) Z"),  # the parenthetical is not at the end
        ("영락경(瓔珞經))", "영락경(瓔珞經))"),  # unbalanced: left to the bracket repair
    ],
)
def test_a_trailing_gloss_is_dropped(span, expected):
    context = f"앞 {span} 뒤"
    start = context.index(span)
    a, b = drop_parenthetical(context, start, start + len(span))
    assert context[a:b] == expected
