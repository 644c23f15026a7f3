"""README figures of relation extraction (benchmarks/relation.py)."""

from __future__ import annotations

from statistics import mean, stdev

from readme_figures.base import Figure


def re_speedup(results: dict, system: str) -> float:
    """How many times the transformers pipeline's time (its better batch size) `system` takes less."""
    seconds = results["throughput"]["seconds"]
    return min(v for k, v in seconds.items() if "pipeline" in k) / seconds[system]


def re_run(results: dict, epochs: float, precision: str = "no", seed: int = 0) -> dict:
    """The run of results/relation_epochs.json with these settings (runs recorded before their
    precision or seed was: fp32, seed 0), whichever run of the table wrote the file last."""
    runs = results["other_runs"] + [results["run"]]
    key = (epochs, precision, seed)
    return next(r for r in runs if (r["epochs"], r.get("mixed_precision", "no"), r.get("seed", 0)) == key)


def re_four(results: dict) -> dict:
    """The four-epoch bf16 run, which the README's relation sentences describe."""
    return re_run(results, 4, "bf16")


def re_four_shift(results: dict) -> dict:
    """The prior-shift analysis, which relation.py computes for the run that wrote the file: only
    while that is the four-epoch run (a later run must get its own README sentences)."""
    if results["run"]["name"] != re_four(results)["name"]:
        raise KeyError(f"relation_epochs.json's prior shift is of {results['run']['name']}, not the four-epoch run")
    return results["prior_shift"]


def re_pair_vote(results: dict) -> dict:
    """The vote of the three- and four-epoch runs, which the README describes: only while those two
    are all the members."""
    ensemble = results["ensemble"]
    if sorted(ensemble["names"]) != sorted([re_run(results, 3)["name"], re_four(results)["name"]]):
        raise KeyError(f"relation_epochs.json's vote is of {ensemble['names']}, not the three- and four-epoch runs")
    return ensemble


def re_vote(results: dict) -> dict:
    """The soft vote of the best relation model and the second one, weights chosen on the held-out slice."""
    return results["ensemble_at_size"]["votes"]["weights chosen on the held-out slice"]


FIGURES: dict[str, Figure] = {
    # relation extraction (benchmarks/relation.py)
    "re.train_n": Figure("relation.json", lambda d: d["settings"]["train_n"], "{:,}"),
    "re.dev_n": Figure("relation.json", lambda d: d["settings"]["dev_n"], "{:,}"),
    "re.typed_punct_f1": Figure("relation.json", lambda d: mean(d["by_format"]["typed-punct"]), "{:.1f}"),
    "re.entity_f1": Figure("relation.json", lambda d: mean(d["by_format"]["entity"]), "{:.1f}"),
    "re.typed_punct_sd": Figure("relation.json", lambda d: stdev(d["by_format"]["typed-punct"]), "{:.1f}"),
    "re.entity_sd": Figure("relation.json", lambda d: stdev(d["by_format"]["entity"]), "{:.1f}"),
    "re.best_f1": Figure("relation.json", lambda d: d["best"]["dev"]["micro_f1"], "{:.1f}"),
    "re.best_minutes": Figure("relation.json", lambda d: d["best"]["train_s"] / 60, "{:.0f}"),
    "re.calibrated_f1": Figure("relation.json", lambda d: d["calibrated"]["micro_f1"], "{:.1f}"),
    "re.calibrated_gain": Figure(
        "relation.json", lambda d: d["calibrated"]["micro_f1"] - d["best"]["dev"]["micro_f1"], "{:+.1f}"
    ),
    "re.calibrated_temperature": Figure("relation.json", lambda d: d["calibrated"]["temperature"], "{:.2f}"),
    "re.typed_punct_calibrated_f1": Figure(
        "relation.json", lambda d: mean(d["by_format_calibrated"]["typed-punct"]), "{:.1f}"
    ),
    "re.entity_calibrated_f1": Figure("relation.json", lambda d: mean(d["by_format_calibrated"]["entity"]), "{:.1f}"),
    **{
        f"re.head.{head}_f1": Figure(
            "relation.json",
            lambda d, head=head: next(
                r["scores"]["dev_sample"]["micro_f1"] for r in d["runs"] if r["name"] == f"pooling-{head}-seed0"
            ),
            "{:.1f}",
        )
        for head in ("cls", "rbert", "bilstm")
    },
    "re.at_size.second_f1": Figure(
        "relation.json", lambda d: d["ensemble_at_size"]["second"]["dev"]["micro_f1"], "{:.1f}"
    ),
    "re.at_size.vote_f1": Figure("relation.json", lambda d: re_vote(d)["micro_f1"], "{:.1f}"),
    "re.at_size.gain": Figure(
        "relation.json", lambda d: re_vote(d)["micro_f1"] - d["best"]["dev"]["micro_f1"], "{:+.1f}"
    ),
    "re.at_size.auprc_gain": Figure(
        "relation.json", lambda d: re_vote(d)["auprc"] - d["best"]["dev"]["auprc"], "{:+.1f}"
    ),
    "re.ensemble_f1": Figure(
        "relation.json", lambda d: d["ensemble"]["weights chosen on the held-out slice"]["micro_f1"], "{:.1f}"
    ),
    "re.shift.held_f1": Figure("relation.json", lambda d: d["prior_shift"]["held_out"]["micro_f1"], "{:.1f}"),
    "re.shift.oracle_f1": Figure("relation.json", lambda d: d["prior_shift"]["oracle prior"]["micro_f1"], "{:.1f}"),
    "re.shift.oracle_gain": Figure(
        "relation.json",
        lambda d: d["prior_shift"]["oracle prior"]["micro_f1"] - d["prior_shift"]["dev"]["micro_f1"],
        "{:+.1f}",
    ),
    "re.shift.em_f1": Figure("relation.json", lambda d: d["prior_shift"]["em adapted"]["micro_f1"], "{:.1f}"),
    "re.shift.dev_none": Figure(
        "relation.json", lambda d: 100 * d["prior_shift"]["no_relation_share"]["dev"], "{:.0f} %"
    ),
    "re.shift.train_none": Figure(
        "relation.json", lambda d: 100 * d["prior_shift"]["no_relation_share"]["train"], "{:.0f} %"
    ),
    "re.shift.predicted_none": Figure(
        "relation.json", lambda d: 100 * d["prior_shift"]["dev"]["predicted_no_relation"], "{:.0f} %"
    ),
    "re.speedup": Figure("relation.json", lambda d: re_speedup(d, "odqa (sorted, batch 64)"), "{:.1f}×"),
    "re.int8_speedup": Figure("relation.json", lambda d: re_speedup(d, "odqa --int8 (sorted, batch 64)"), "{:.1f}×"),
    # prediction speed and precision of the best single relation model (benchmarks/relation.py --speed)
    **{
        f"re.speed.{short}": Figure("relation_speed.json", lambda d, n=name: re_speedup(d, n), "{:.1f}×")
        for short, name in (
            ("fp32", "odqa (sorted, batch 64)"),
            ("bf16", "odqa --bf16 (sorted, batch 64)"),
            ("int8", "odqa --int8 (sorted, batch 64)"),
        )
    },
    **{
        f"re.speed.{precision}_{metric}": Figure(
            "relation_speed.json", lambda d, p=precision, m=metric: d["scores"][p][m], "{:.1f}"
        )
        for precision in ("fp32", "bf16", "int8")
        for metric in ("micro_f1", "auprc")
    },
    # the best relation model trained longer (benchmarks/relation.py --longer)
    "re.epochs.epochs": Figure("relation_epochs.json", lambda d: re_four(d)["epochs"], "{:g}"),
    "re.epochs.f1": Figure("relation_epochs.json", lambda d: re_four(d)["scores"]["dev"]["micro_f1"], "{:.1f}"),
    "re.epochs.auprc": Figure("relation_epochs.json", lambda d: re_four(d)["scores"]["dev"]["auprc"], "{:.1f}"),
    "re.epochs.held_f1": Figure(
        "relation_epochs.json", lambda d: re_four(d)["scores"]["held_out"]["micro_f1"], "{:.1f}"
    ),
    "re.epochs.minutes": Figure("relation_epochs.json", lambda d: re_four(d)["train_s"] / 60, "{:.0f}"),
    "re.epochs.gain": Figure(
        "relation_epochs.json",
        lambda d: re_four(d)["scores"]["dev"]["micro_f1"] - d["one_epoch"]["dev"]["micro_f1"],
        "{:+.1f}",
    ),
    "re.epochs.auprc_gain": Figure(
        "relation_epochs.json",
        lambda d: re_four(d)["scores"]["dev"]["auprc"] - d["one_epoch"]["dev"]["auprc"],
        "{:+.1f}",
    ),
    "re.epochs.predicted_none": Figure(
        "relation_epochs.json", lambda d: 100 * re_four_shift(d)["dev"]["predicted_no_relation"], "{:.0f} %"
    ),
    **{
        f"re.epochs.{name}": Figure(
            "relation_epochs.json",
            # rounded first, so that no change reads +0.0, not -0.0
            lambda d, row=row, metric=metric: (
                round(re_four_shift(d)[row][metric] - re_four_shift(d)["dev"][metric], 1) + 0.0
            ),
            "{:+.1f}",
        )
        for name, row, metric in (
            ("oracle_gain", "oracle prior", "micro_f1"),
            ("restricted_gain", "type restricted", "micro_f1"),
            ("restricted_auprc_gain", "type restricted", "auprc"),
        )
    },
    "re.epochs.restricted_changed": Figure(
        "relation_epochs.json", lambda d: 100 * re_four_shift(d)["type restricted"]["changed"], "{:.1f} %"
    ),
    **{
        f"re.epochs.{word}_f1": Figure(
            "relation_epochs.json", lambda d, n=n: re_run(d, n)["scores"]["dev"]["micro_f1"], "{:.1f}"
        )
        for word, n in (("two", 2), ("three", 3))
    },
    "re.epochs.vs_three": Figure(
        "relation_epochs.json",
        lambda d: re_four(d)["scores"]["dev"]["micro_f1"] - re_run(d, 3)["scores"]["dev"]["micro_f1"],
        "{:+.1f}",
    ),
    "re.epochs.three_minutes": Figure("relation_epochs.json", lambda d: re_run(d, 3)["train_s"] / 60, "{:.0f}"),
    "re.epochs.precision": Figure("relation_epochs.json", lambda d: re_four(d)["mixed_precision"]),
    "re.epochs.vote_f1": Figure(
        "relation_epochs.json", lambda d: re_pair_vote(d)["equal_weights"]["micro_f1"], "{:.1f}"
    ),
    "re.epochs.vote_auprc": Figure(
        "relation_epochs.json", lambda d: re_pair_vote(d)["equal_weights"]["auprc"], "{:.1f}"
    ),
    "re.epochs.vote_gain": Figure(
        "relation_epochs.json",
        lambda d: (
            re_pair_vote(d)["equal_weights"]["micro_f1"]
            - max(
                r["scores"]["dev"]["micro_f1"]
                for r in d["other_runs"] + [d["run"]]
                if r["name"] in d["ensemble"]["names"]
            )
        ),
        "{:+.1f}",
    ),
    "re.epochs.vote_chosen_f1": Figure("relation_epochs.json", lambda d: re_pair_vote(d)["dev"]["micro_f1"], "{:.1f}"),
    "re.epochs.vote_chosen_weight": Figure("relation_epochs.json", lambda d: re_pair_vote(d)["weights"][0], "{:.2f}"),
}
