"""The tuning rule, looked back on: every stored end-to-end run (results/e2e*.json) that chose its
k and retriever weight by the best EM on its tuning questions, chosen again by the one-standard-error
rule (`odqa tune-pipeline`'s default) from the same tuning grid, and the competition validation's EM
at each choice from the same run's EM by k. No model runs: the grid holds every pair's EM, and an
EM over n questions of 0/1 scores fixes the count right and so the standard error.

The validation EM at a pair is known where the run measured it: at its own choice, at any k where
that k's weight is the run's (EM by k is read at the chosen weight), at k = 1 (one passage: the
weight cannot change the answer) and, for runs of e2e.py --tune-rule one-se, at the best pair it
evaluated too. Elsewhere the row says so.

    python tune_rule.py
"""

from __future__ import annotations

import json
import statistics

from common import ROOT, markdown_table, write_results

VALIDATION = "competition validation"


def grid(tuning: dict) -> dict[tuple[int, float], list[float]]:
    """Per-question 0/1 scores (in no particular order) that give each pair's stored EM."""
    n = tuning["questions"]
    scores = {}
    for key, em in tuning[f"em_{tuning['metric']}"].items():
        k, w = (part.split("=")[1] for part in key.split())
        right = round(em * n / 100)
        scores[(int(k), float(w))] = [1.0] * right + [0.0] * (n - right)
    return scores


def validation_em(run: dict, pair: tuple[int, float]) -> float | None:
    """The competition validation's korquad EM at a (k, weight) pair, where the run measured it."""
    chosen = run["tuning"]["chosen"]
    at = run["sets"][VALIDATION]
    k, w = pair
    if w == chosen["retriever_weight"] or k == 1:
        return at["by_k"][str(k)]["korquad"]["exact_match"]
    best = run.get("at_best")
    if best and (best["k"], best["retriever_weight"]) == pair:
        return best["sets"][VALIDATION]["korquad"]["exact_match"]
    return None


def main() -> None:
    from odqa.e2e import choose_setting

    results_dir = ROOT / "benchmarks" / "results"
    runs, rows = [], []
    for path in sorted(results_dir.glob("e2e*.json")):
        if path.name.endswith(("_details.json", ".run.json")):
            continue
        run = json.loads(path.read_text(encoding="utf-8"))
        tuning = run.get("tuning")
        if not tuning or VALIDATION not in run.get("sets", {}) or tuning.get("rule", "best") != "best":
            continue
        scores = grid(tuning)
        best, _, standard_error = choose_setting(scores, "best")
        one_se, _, _ = choose_setting(scores, "one-se")
        em = {pair: 100 * sum(v) / len(v) for pair, v in scores.items()}
        entry = {
            "run": path.stem,
            "tuning_questions": tuning["questions"],
            "standard_error": standard_error,
            "best": {"k": best[0], "retriever_weight": best[1], "tuning_em": em[best]},
            "one_se": {"k": one_se[0], "retriever_weight": one_se[1], "tuning_em": em[one_se]},
            "validation_em_best": validation_em(run, best),
            "validation_em_one_se": validation_em(run, one_se),
        }
        runs.append(entry)

        def cell(value):
            return "not measured" if value is None else f"{value:.1f}"

        rows.append(
            [
                path.stem,
                tuning["questions"],
                f"k {best[0]}, w {best[1]:g}: {em[best]:.1f} ± {standard_error:.1f}",
                f"k {one_se[0]}, w {one_se[1]:g}: {em[one_se]:.1f}",
                cell(entry["validation_em_best"]),
                cell(entry["validation_em_one_se"]),
            ]
        )
    measured = [r for r in runs if None not in (r["validation_em_best"], r["validation_em_one_se"])]
    gains = [r["validation_em_one_se"] - r["validation_em_best"] for r in measured]
    summary = {
        "runs": len(runs),
        "measured": len(measured),
        "mean_gain": statistics.mean(gains) if gains else None,
        "better": sum(g > 0 for g in gains),
        "same": sum(g == 0 for g in gains),
        "worse": sum(g < 0 for g in gains),
        "passages_best": sum(r["best"]["k"] for r in runs),
        "passages_one_se": sum(r["one_se"]["k"] for r in runs),
    }
    results = {"runs": runs, "summary": summary}
    header = ["run", "tuning questions", "best pair (tuning EM ± SE)", "one-SE pair (tuning EM)"]
    header += ["validation EM, best pair", "validation EM, one-SE pair"]
    table = (
        "The one-standard-error rule against the best pair, on every stored e2e run tuned by the best EM "
        "(tuning: the run's held-out questions; validation: the competition validation, korquad EM)\n\n"
        + markdown_table(header, rows)
        + (
            f"\nWhere both were measured ({summary['measured']} of {summary['runs']} runs): the one-SE pair "
            f"{summary['mean_gain']:+.1f} EM on average ({summary['better']} better, {summary['same']} the same, "
            f"{summary['worse']} worse), reading {summary['passages_one_se']} passages for every "
            f"{summary['passages_best']} the best pairs read (summed over the runs' k).\n"
            if gains
            else ""
        )
    )
    write_results("tune_rule", results, table)
    print(table)


if __name__ == "__main__":
    main()
