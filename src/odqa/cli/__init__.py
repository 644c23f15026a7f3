"""The `odqa` command line: thin wrappers over the library. Errors in the user's input print one
line naming the problem and exit with status 2.

Each module here holds one group of commands on its own `group` (index and search, dense and
fusion, reader, ensemble, question answering, models, serving logs,
relation extraction); this one entry point gathers them into `app`. The
command modules import only `odqa.cli.common`, never each other or this module."""

from __future__ import annotations

import sys

import typer

from odqa.cli import dense, ensemble, index, logs, models, qa, reader, relation
from odqa.errors import OdqaError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Open-domain question answering toolkit.",
)
for module in (index, reader, ensemble, dense, qa, models, logs, relation):
    app.registered_commands += module.group.registered_commands
    app.registered_groups += module.group.registered_groups


def main() -> None:
    try:
        app()
    except OdqaError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
