"""Placeholder: this command group is added by its issue."""

import typer


def register(app: typer.Typer) -> None:
    del app
