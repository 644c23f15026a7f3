"""The Korean clean-up's rules measured: the unit trim on the questions that ask for a number in a unit
(stage units) and the trailing-parenthetical rule on gold answers (stage glosses)."""

from __future__ import annotations

from common import DATA, log
from korean_bench import OUT


def stage_units() -> dict:
    """The unit trim (ReaderConfig.unit_trim) where it applies: the questions that ask for a number
    in a unit ("몇 명", "… 해는?"). The reader with the Korean clean-up, trim off and on (gold
    passage), and how many gold answers the trim would change if it were applied to them."""
    from odqa.io.squad import read_qa_examples
    from odqa.metrics import score_predictions
    from odqa.reader import Reader
    from odqa.reader.postprocess import asked_unit, trim_to_unit

    sets = {
        "KorQuAD 1.0 dev (all)": DATA / "korquad/KorQuAD_v1.0_dev.json",
        "competition validation": DATA / "boostcamp_odqa/validation.squad.json",
        "competition train, held-out 300": OUT / "train-heldout.json",
    }
    results = {}
    for set_name, path in sets.items():
        examples = read_qa_examples(path)
        asking = [e for e in examples if asked_unit(e.question)]
        gold = {e.id: e.answer_texts for e in asking}
        changed = 0
        for e in asking:
            a = e.answers[0]
            changed += trim_to_unit(e.context, a.start, a.end, asked_unit(e.question), e.question) != (a.start, a.end)
        entry = {"questions": len(examples), "asking_a_unit": len(asking), "gold_changed": changed}
        answers = {}
        for trim in (False, True):
            reader = Reader.load(OUT / "ko-reader", unit_trim=trim)
            read = reader.read([e.question for e in asking], [[e.context] for e in asking])
            answers[trim] = {e.id: r.text for e, r in zip(asking, read)}
            score = score_predictions(answers[trim], gold, "korquad")
            entry["trim" if trim else "no trim"] = {"exact_match": score["exact_match"], "f1": score["f1"]}
        entry["answers_changed"] = sum(answers[False][i] != answers[True][i] for i in gold)
        results[set_name] = entry
        log(f"units / {set_name}: {entry}")
    return results


def stage_glosses() -> dict:
    """The parenthetical rule (`drop_parenthetical`, part of the Korean clean-up) on the gold answers
    of KorQuAD dev + competition train, no reader: gold answers that a "(…)" gloss follows in the
    context (a span running on over it is repaired to the gold answer?) against gold answers that
    end with one (the rule would cut them)."""
    from odqa.io.squad import read_qa_files
    from odqa.reader.postprocess import clean_span, drop_parenthetical

    examples = read_qa_files([DATA / "korquad/KorQuAD_v1.0_dev.json", DATA / "boostcamp_odqa/train.squad.json"])
    followed = repaired = ending = cut = 0
    for e in examples:
        a = e.answers[0]
        gloss = e.context[a.end :]
        if gloss.startswith(("(", "（")) and (")" in gloss or "）" in gloss):
            close = min(i for i in (gloss.find(")"), gloss.find("）")) if i >= 0)
            followed += 1
            start, end = clean_span(e.context, a.start, a.end + close + 1, analyzers=("kiwi",))
            repaired += e.context[start:end] == a.text
        if a.text.endswith((")", "）")) and not a.text.startswith(("(", "（")):
            ending += 1
            cut += drop_parenthetical(e.context, a.start, a.end) != (a.start, a.end)
    return {
        "gold_answers": len(examples),
        "followed_by_gloss": followed,
        "repaired_to_gold": repaired,
        "ending_with_gloss": ending,
        "cut_by_rule": cut,
    }
