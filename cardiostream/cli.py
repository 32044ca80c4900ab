"""The composition root: `cardiostream …` subcommands.

Each command group lives in ``cardiostream/commands/<group>.py`` and imports
its service lazily, so `cardiostream --help` stays fast and the core stays free
of faust, Kafka, Redis and torch imports.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Real-time ECG arrhythmia monitoring on Kafka, Faust and PyTorch.")

COMMAND_MODULES = ("infra", "simulate", "process", "annotate", "score", "train", "infer", "ops",
                   "product")



@app.callback()
def main() -> None:
    """cardiostream: device simulators, stream processor, inference worker, training, ops."""


@app.command()
def version() -> None:
    """Print the cardiostream version."""
    from cardiostream import __version__

    typer.echo(__version__)


for _name in COMMAND_MODULES:
    importlib.import_module(f"cardiostream.commands.{_name}").register(app)


if __name__ == "__main__":
    app()
