"""`odqa runs list / show / compare`: the run registry (`odqa.runs`) read back — which run gave
a score, trained on what data, with which settings and seed."""

from __future__ import annotations

import json
from typing import Optional

import typer

from odqa.errors import OdqaError

group = typer.Typer()
runs = typer.Typer(no_args_is_help=True, help="Records of every training, indexing, evaluation and benchmark run.")
group.add_typer(runs, name="runs")


def _registry():
    from odqa.runs import Registry

    registry = Registry()
    if not registry.check():
        raise OdqaError(
            f"no run registry at {registry.path} yet: runs are recorded there by `odqa index`, `train-*`, "
            "`evaluate*` and the benchmarks (set ODQA_RUNS to use another folder)"
        )
    return registry


def _metric_columns(records: list[dict], wanted: list[str]) -> list[str]:
    from odqa.runs import numeric_metrics

    names = sorted({name for r in records for name in numeric_metrics(r)})
    return [name for name in names if any(w in name for w in wanted)]


@runs.command("list")
def list_command(
    command: Optional[str] = typer.Option(None, help="only runs of this command, e.g. train-reader"),
    metric: Optional[list[str]] = typer.Option(None, help="show metrics whose name contains this (repeatable)"),
    sort: Optional[str] = typer.Option(None, help="sort by this metric (its full name), best first"),
    limit: int = typer.Option(20, min=1, help="the newest N runs"),
    as_json: bool = typer.Option(False, "--json", help="JSON lines (id, command, status, outputs, metrics)"),
) -> None:
    """The newest runs: id, command, status, when, how long, where the output went, chosen metrics."""
    from rich.console import Console
    from rich.table import Table

    from odqa.runs import numeric_metrics

    records, unreadable = _registry().records()
    if command:
        records = [r for r in records if r.get("command") == command]
    if sort:
        records = [r for r in records if sort in numeric_metrics(r)]
        records.sort(key=lambda r: numeric_metrics(r)[sort])
    records = records[-limit:][::-1]
    if as_json:
        for r in records:
            shown = {k: r.get(k) for k in ("id", "command", "status", "started", "seconds", "outputs")}
            typer.echo(json.dumps(shown | {"metrics": numeric_metrics(r)}, ensure_ascii=False))
    else:
        columns = _metric_columns(records, list(metric or ())) if metric else []
        title = f"{len(records)} run{'' if len(records) == 1 else 's'}" + (f" of {command}" if command else "")
        table = Table(title=title)
        for name in ("id", "status", "started", "s", "output", *columns):
            table.add_column(name, overflow="fold")
        for r in records:
            values = numeric_metrics(r)
            outputs = ", ".join(str(v) for v in (r.get("outputs") or {}).values())
            table.add_row(
                r["id"],
                r.get("status", "?"),
                (r.get("started") or "")[:19].replace("T", " "),
                f"{r.get('seconds', 0):.0f}",
                outputs,
                *(f"{values[c]:.4g}" if c in values else "" for c in columns),
            )
        Console().print(table)
    if unreadable:
        typer.echo(f"warning: {len(unreadable)} unreadable record(s) skipped: {', '.join(unreadable[:5])}", err=True)


@runs.command("show")
def show_command(
    run_id: str = typer.Argument(..., help="a run id, or a unique start or end of one"),
) -> None:
    """One run's whole record (JSON): command line, config, input fingerprints, versions, metrics."""
    typer.echo(json.dumps(_registry().find(run_id), ensure_ascii=False, indent=2))


@runs.command("compare")
def compare_command(
    run_ids: list[str] = typer.Argument(..., help="two or more run ids (or unique starts or ends of them)"),
    everything: bool = typer.Option(False, "--all", help="also the settings and metrics that are the same"),
) -> None:
    """Settings, inputs (by fingerprint) and metrics of runs side by side (only what differs, unless --all)."""
    from rich.console import Console
    from rich.table import Table

    from odqa.runs import flatten, numeric_metrics

    if len(run_ids) < 2:
        raise OdqaError("compare needs at least two run ids")
    registry = _registry()
    records = [registry.find(i) for i in run_ids]
    sections = {
        "config": [flatten(r.get("config") or {}) for r in records],
        "input": [{k: v for k, v in flatten(r.get("inputs") or {}).items() if k.endswith("sha256")} for r in records],
        "metric": [numeric_metrics(r) for r in records],
        "run": [{"command": r.get("command"), "status": r.get("status"), "git": r.get("git_commit")} for r in records],
    }
    table = Table(title="runs compared" + ("" if everything else " (only what differs; --all for everything)"))
    table.add_column("", overflow="fold")
    for r in records:
        table.add_column(r["id"], overflow="fold")
    for section, values in sections.items():
        for name in sorted({n for v in values for n in v}):
            cells = [v.get(name) for v in values]
            if not everything and all(c == cells[0] for c in cells):
                continue
            width = 60 if section == "input" else 200
            shown = ["" if c is None else f"{c:.4g}" if isinstance(c, float) else str(c)[:width] for c in cells]
            table.add_row(f"{section} {name}", *shown)
    Console().print(table)
