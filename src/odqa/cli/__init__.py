"""The `odqa` command line: thin wrappers over the library. Errors in the user's input print one
line naming the problem and exit with status 2.

Each module here holds one group of commands on its own `group` (index and search, dense and
fusion, reader, ensemble, question answering, tuning and pseudo-labels, models, serving logs,
relation extraction, run records); this one entry point gathers them into `app`. The
command modules import only `odqa.cli.common`, never each other or this module.

Every command that indexes, trains, evaluates or predicts is recorded (`odqa.runs`): its options,
input fingerprints, versions and metrics go beside its output and into the run registry."""

from __future__ import annotations

import functools
import sys

import typer

from odqa.cli import dense, ensemble, index, logs, models, qa, reader, relation, runs, tuning
from odqa.errors import OdqaError

# commands that leave a run record, beside the output their `--out` names (`re evaluate`: `--json`)
RECORDED = {
    "index", "index-dense", "train-reader", "train-dense", "train-reranker", "pretrain-mlm", "import-model",
    "trim-vocab", "tune-fusion", "eval-retrieval", "evaluate-reader", "read", "evaluate", "predict", "ensemble",
    "tune-pipeline", "tune-rerank",
    "re train", "re predict", "re evaluate", "re ensemble",
}  # fmt: skip
OUTPUTS = {"re evaluate": ("json_out",)}


def _recorded(name: str, callback, outputs: tuple[str, ...]):
    """The command's callback, run inside a run record (typer reads the original's signature)."""

    @functools.wraps(callback)
    def run(**options):
        from odqa.runs import recording

        with recording(name, options, outputs):
            return callback(**options)

    return run


def _command_name(info) -> str:
    return info.name or info.callback.__name__.replace("_", "-")


app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Open-domain question answering toolkit.",
)


def _print_version(value: bool) -> None:
    if value:
        from odqa import __version__

        typer.echo(f"odqa {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="print odqa's version and exit"
    ),
) -> None:
    """Open-domain question answering toolkit."""


for module in (index, reader, ensemble, dense, qa, tuning, models, logs, relation, runs):
    app.registered_commands += module.group.registered_commands
    app.registered_groups += module.group.registered_groups
for prefix, commands in [("", app.registered_commands)] + [
    (f"{g.name} ", g.typer_instance.registered_commands) for g in app.registered_groups
]:
    for info in commands:
        name = prefix + _command_name(info)
        if name in RECORDED and not hasattr(info.callback, "__wrapped__"):
            info.callback = _recorded(name, info.callback, OUTPUTS.get(name, ("out",)))


def main() -> None:
    finished = False
    try:
        app()
        finished = True
    except SystemExit as e:
        finished = e.code in (0, None)
        raise
    except OdqaError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    finally:
        from odqa.training.loop import close_processes  # a run under torchrun / accelerate launch

        close_processes(wait=finished)


if __name__ == "__main__":
    main()
