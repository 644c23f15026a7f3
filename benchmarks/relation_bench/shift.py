"""Where the gap between the held-out slice and dev lies: the best model re-weighted by label shares
(an oracle and an EM estimate) and restricted by entity-type pair, and the table that shows it."""

from __future__ import annotations

from common import markdown_table


def prior_shift(best_dev, dev_gold, held: dict, held_gold, train_gold, labels, allowed=None) -> dict:
    """Is the gap between the held-out slice and dev the `no_relation` share? From stored probabilities:
    the best model re-weighted by dev's true label shares (an oracle, the most a prior correction could
    give: p(y|x) · q(y)/p(y), renormalised) and by shares estimated from the unlabelled dev sentences
    (calibrated on the held-out slice, then EM label-shift adaptation, Saerens et al. 2002). With
    `allowed` (dev sentences × labels, true where the label was seen with the sentence's entity-type pair
    in training): also the probabilities restricted to those labels after training, as
    `--restrict-types` does inside the model."""
    import numpy as np

    from odqa.relation.calibration import apply_calibration, fit_calibration
    from odqa.relation.data import NO_RELATION
    from odqa.relation.metrics import auprc, micro_f1

    n = len(labels)
    source = np.bincount(train_gold, minlength=n) / len(train_gold)
    target = np.bincount(dev_gold, minlength=n) / len(dev_gold)
    none = labels.index(NO_RELATION)

    def scored(probabilities) -> dict:
        predicted = probabilities.argmax(1)
        return {
            "micro_f1": micro_f1(predicted, dev_gold, labels),
            "auprc": auprc(probabilities, dev_gold),
            "predicted_no_relation": float((predicted == none).mean()),
        }

    def reweighted(probabilities, shares):
        q = probabilities * (shares / np.maximum(source, 1e-12))
        return q / q.sum(1, keepdims=True)

    fitted = fit_calibration(np.array(held["held_out"]["probabilities"]), held_gold)
    calibrated = apply_calibration(best_dev, fitted["temperature"], fitted["bias"])
    shares = source.copy()
    for _ in range(200):  # EM: posteriors under the current shares, then their mean as the new shares
        new = reweighted(calibrated, shares).mean(0)
        done = np.abs(new - shares).max() < 1e-8
        shares = new
        if done:
            break
    result = {
        "no_relation_share": {"train": float(source[none]), "dev": float(target[none])},
        "held_out": {m: held["held_out"][m] for m in ("micro_f1", "auprc")},
        "dev": scored(best_dev),
        "oracle prior": scored(reweighted(best_dev, target)),
        "em adapted": scored(reweighted(calibrated, shares)) | {"estimated_no_relation": float(shares[none])},
    }
    if allowed is not None:
        restricted = np.where(allowed, best_dev, 0.0)
        result["type restricted"] = scored(restricted / restricted.sum(1, keepdims=True)) | {
            "changed": float((restricted.argmax(1) != best_dev.argmax(1)).mean()),
            "gold_ruled_out": float((~allowed[np.arange(len(dev_gold)), dev_gold]).mean()),
        }
    return result


def type_mask(train, examples, labels):
    """examples × labels: true where the label was seen in `train` with the example's entity-type pair
    (every label for a pair never seen; `no_relation` always), as `--restrict-types` rules."""
    from odqa.relation.model import allowed_labels, allowed_table, type_pair_key

    allowed = allowed_labels(train)
    rows = {pair: row for row, pair in enumerate(sorted(allowed))}
    return allowed_table(allowed, labels)[[rows.get(type_pair_key(*e.type_pair), len(rows)) for e in examples]]


def prior_table(shift: dict) -> str:
    shares = shift["no_relation_share"]
    rows = [["held-out slice of the training set (800)", *shift["held_out"].values(), "-"]]
    names = {
        "dev": "dev, as predicted",
        "oracle prior": "dev, re-weighted by dev's true label shares (an oracle)",
        "em adapted": f"dev, calibrated + EM label-shift adaptation (estimated no_relation "
        f"{100 * shift['em adapted']['estimated_no_relation']:.0f} %)",
    }
    if "type restricted" in shift:
        names["type restricted"] = (
            "dev, labels restricted to those seen with the entity-type pair in training "
            f"({100 * shift['type restricted']['changed']:.1f} % of answers change; the gold label is ruled out "
            f"for {100 * shift['type restricted']['gold_ruled_out']:.1f} %)"
        )
    for key, label in names.items():
        rows.append([label, shift[key]["micro_f1"], shift[key]["auprc"], 100 * shift[key]["predicted_no_relation"]])
    return (
        f"\n### Where the dev gap is: the best model; no_relation is {100 * shares['train']:.0f} % of the training "
        f"pool and {100 * shares['dev']:.0f} % of dev\n\n"
        + markdown_table(["scored on", "micro-F1", "AUPRC", "predicted no_relation %"], rows)
    )
