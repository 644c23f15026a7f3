"""What a serving log says: request rate, latency percentiles per stage, errors, the questions the
reader was least sure of and those whose retrieved passages scored lowest (what the collection
lacks). Reads the JSON lines `odqa serve --log` writes (odqa.serve.requestlog), rotated files
included; a corrupt line is counted and named, never fatal. Rendered as text tables or one
self-contained HTML page."""

from __future__ import annotations

import html
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from odqa.errors import OdqaError
from odqa.serve.requestlog import LOG_VERSION

STAGES = ("retrieve_ms", "read_ms", "total_ms")
PERCENTILES = (50, 90, 99)


@dataclass
class ServingLog:
    records: list[dict]
    corrupt: int = 0
    first_corrupt: str | None = None  # "file:line"
    other_version: int = 0
    files: list[str] = field(default_factory=list)


def read_log(paths: list[str | Path]) -> ServingLog:
    """Records of every file in `paths`, oldest first (a rotated `log.1` holds older lines than `log`)."""
    log = ServingLog([])
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise OdqaError(f"serving log not found: {path} (write one with `odqa serve --log FILE`)")
        log.files.append(str(path))
        with open(path, encoding="utf-8", errors="replace") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    valid = isinstance(record, dict) and isinstance(record.get("endpoint"), str)
                    valid = valid and isinstance(record.get("ts"), (int, float))
                except ValueError:
                    valid = False
                if not valid:
                    log.corrupt += 1
                    log.first_corrupt = log.first_corrupt or f"{path}:{number}"
                    continue
                if record.get("v") != LOG_VERSION:
                    log.other_version += 1
                    continue
                log.records.append(record)
    log.records.sort(key=lambda r: r["ts"])
    return log


def _question(record: dict) -> str:
    if "question" in record:
        return record["question"]
    chars = record.get("question_chars")
    return f"(not logged, {chars} characters)" if chars is not None else "(not logged)"


def summarise(log: ServingLog, lowest: int = 10) -> dict:
    records = log.records
    if not records:
        raise OdqaError(
            f"no requests in {', '.join(log.files)}"
            + (f" ({log.corrupt} corrupt lines, first at {log.first_corrupt})" if log.corrupt else "")
            + (f" ({log.other_version} lines from another odqa log version)" if log.other_version else "")
        )
    span = records[-1]["ts"] - records[0]["ts"]
    answered = [r for r in records if r.get("status") == 200]
    asks = [r for r in answered if r["endpoint"] == "/ask"]
    latency = {}
    for endpoint in sorted({r["endpoint"] for r in answered}):
        for stage in STAGES:
            values = [
                r[stage] for r in answered if r["endpoint"] == endpoint and isinstance(r.get(stage), (int, float))
            ]
            if values:
                row = {f"p{p}": float(np.percentile(values, p)) for p in PERCENTILES}
                latency[f"{endpoint} {stage[:-3]}"] = row | {"max": float(max(values)), "n": len(values)}
    scored = sorted((r for r in asks if r.get("score") is not None), key=lambda r: r["score"])
    retrieved = sorted((r for r in answered if r.get("passage_scores")), key=lambda r: r["passage_scores"][0])
    errors = Counter(r.get("error") or f"HTTP {r.get('status')}" for r in records if r.get("status") != 200)
    return {
        "files": log.files,
        "requests": len(records),
        "first": records[0].get("time"),
        "last": records[-1].get("time"),
        "span_s": span,
        "per_minute": 60 * len(records) / span if span > 0 else None,
        "by_status": dict(sorted(Counter(f"{r['endpoint']} {r.get('status')}" for r in records).items())),
        "errors": errors.most_common(10),
        "unanswered": sum(1 for r in asks if r.get("answer") in (None, "")),
        "latency_ms": latency,
        "lowest_confidence": [
            {"question": _question(r), "answer": r.get("answer"), "score": r["score"]} for r in scored[:lowest]
        ],
        "weakest_retrieval": [
            {"question": _question(r), "top_score": r["passage_scores"][0], "endpoint": r["endpoint"]}
            for r in retrieved[:lowest]
        ],
        "corrupt_lines": log.corrupt,
        "first_corrupt": log.first_corrupt,
        "other_version_lines": log.other_version,
        "latencies_total_ms": [r["total_ms"] for r in answered if isinstance(r.get("total_ms"), (int, float))],
    }


def print_report(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    rate = f", {summary['per_minute']:.1f} per minute" if summary["per_minute"] else ""
    console.print(f"{summary['requests']:,} requests from {summary['first']} to {summary['last']} UTC{rate}")
    if summary["corrupt_lines"]:
        console.print(f"skipped {summary['corrupt_lines']} corrupt lines (first at {summary['first_corrupt']})")
    if summary["other_version_lines"]:
        console.print(f"skipped {summary['other_version_lines']} lines written by another odqa log version")
    for title, columns, rows in _sections(summary):
        table = Table(title=title, title_justify="left")
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*row)
        console.print(table)


def _sections(summary: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    status = [[k, f"{v:,}"] for k, v in summary["by_status"].items()]
    latency = [
        [name, *(f"{row[f'p{p}']:.1f}" for p in PERCENTILES), f"{row['max']:.1f}", f"{row['n']:,}"]
        for name, row in summary["latency_ms"].items()
    ]
    errors = [[message.replace("\n", " "), f"{count:,}"] for message, count in summary["errors"]]
    low = [
        [" ".join(r["question"].split()), " ".join((r["answer"] or "—").split()), f"{r['score']:.3f}"]
        for r in summary["lowest_confidence"]
    ]
    weak = [
        [" ".join(r["question"].split()), f"{r['top_score']:.3f}", r["endpoint"]] for r in summary["weakest_retrieval"]
    ]
    return [
        ("requests", ["endpoint status", "count"], status),
        ("latency (ms)", ["stage", *(f"p{p}" for p in PERCENTILES), "max", "requests"], latency),
        ("errors", ["error", "count"], errors),
        (f"least confident answers ({summary['unanswered']} without an answer)", ["question", "answer", "score"], low),
        ("weakest retrieval (top passage score)", ["question", "top score", "endpoint"], weak),
    ]


def html_report(summary: dict) -> str:
    """One self-contained page: the tables and a histogram of total latency (inline SVG)."""
    esc = html.escape
    parts = [
        "<!doctype html><meta charset='utf-8'><title>odqa serving report</title>",
        "<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse;"
        "margin:0 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}</style>",
        f"<h1>odqa serving report</h1><p>{summary['requests']:,} requests from {esc(str(summary['first']))} "
        f"to {esc(str(summary['last']))} UTC"
        + (f", {summary['per_minute']:.1f} per minute" if summary["per_minute"] else "")
        + (f"; {summary['corrupt_lines']} corrupt lines skipped" if summary["corrupt_lines"] else "")
        + "</p>",
        _histogram(summary["latencies_total_ms"]),
    ]
    for title, columns, rows in _sections(summary):
        parts.append(f"<h2>{esc(title)}</h2><table><tr>" + "".join(f"<th>{esc(c)}</th>" for c in columns) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{esc(cell)}</td>" for cell in row) + "</tr>" for row in rows]
        parts.append("</table>")
    return "\n".join(parts) + "\n"


def _histogram(values: list[float], bins: int = 20, width: int = 600, height: int = 160) -> str:
    if not values:
        return ""
    counts, edges = np.histogram(values, bins=bins)
    bar = width / bins
    top = max(int(counts.max()), 1)
    rects = "".join(
        f"<rect x='{i * bar:.1f}' y='{height - c / top * height:.1f}' width='{bar - 1:.1f}' "
        f"height='{c / top * height:.1f}' fill='#4a7'><title>{edges[i]:.0f}–{edges[i + 1]:.0f} ms: {c}</title></rect>"
        for i, c in enumerate(counts.tolist())
    )
    return (
        f"<h2>total latency</h2><svg width='{width}' height='{height + 20}' role='img'>{rects}"
        f"<text x='0' y='{height + 15}'>{edges[0]:.0f} ms</text>"
        f"<text x='{width}' y='{height + 15}' text-anchor='end'>{edges[-1]:.0f} ms</text></svg>"
    )
