"""Serving-log commands: `odqa logs report`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

group = typer.Typer()
logs = typer.Typer(help="Serving logs written by `odqa serve --log`.", no_args_is_help=True)
group.add_typer(logs, name="logs")


@logs.command()
def report(
    log: list[Path] = typer.Argument(..., help="log files, e.g. serve.log.1 serve.log (rotated ones included)"),
    lowest: int = typer.Option(10, min=1, help="questions listed as least confident / weakest retrieval"),
    html: Optional[Path] = typer.Option(None, help="also write a self-contained HTML report here"),
    out: Optional[Path] = typer.Option(None, "--json", help="also write the summary as JSON here"),
) -> None:
    """Request rate, latency percentiles per stage, errors, the least confident answers and the
    questions whose retrieved passages scored lowest (what the collection lacks)."""
    from odqa.io import atomic_write_text
    from odqa.serve.report import html_report, print_report, read_log, summarise

    summary = summarise(read_log(log), lowest)
    print_report(summary)
    if html:
        atomic_write_text(html, html_report(summary))
        typer.echo(f"wrote {html}")
    if out:
        data = {k: v for k, v in summary.items() if k != "latencies_total_ms"}
        atomic_write_text(out, json.dumps(data, ensure_ascii=False, indent=2))
        typer.echo(f"wrote {out}")
