"""The one way a subcommand refuses: raise `CliError` where the problem is found.

click prints it as one line on stderr, `clinic-edge: <what is wrong and what to do>`, and exits
with its code (2 unless said otherwise: 4 for a full disk, ...); no traceback, nothing half done.
Every package's subcommands use it, so exit codes and the message format are the same everywhere.
"""
from __future__ import annotations

import click


class CliError(click.ClickException):
    prog = "clinic-edge"

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.exit_code = code

    def show(self, file=None) -> None:
        click.echo(f"{self.prog}: {self.format_message()}", err=True, file=file)
