"""Errors as one line on stderr and an exit code, never a traceback: 1 for the library's typed
errors (their own code where they carry one), 128 + n after a signal, 141 for a broken pipe, 70
for a bug (VSR_PIPE_DEBUG=1 shows its traceback)."""

from __future__ import annotations

import os
import signal
import sys

import click

from ..errors import Interrupted, VsrPipeError


class user_errors:
    """Turn library errors into one line on stderr and an exit code; never a traceback."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None or isinstance(exc, (click.exceptions.Exit, click.ClickException, click.Abort)):
            return False
        if isinstance(exc, VsrPipeError):
            click.echo(f"vsr-pipe: {'' if isinstance(exc, Interrupted) else 'error: '}{exc}", err=True)
            sys.exit(exc.exit_code)
        if isinstance(exc, KeyboardInterrupt):
            signum = getattr(exc, "signum", signal.SIGINT)
            click.echo(f"vsr-pipe: interrupted by {signal.Signals(signum).name}: no partial output kept", err=True)
            sys.exit(128 + signum)
        if isinstance(exc, BrokenPipeError):
            click.echo("vsr-pipe: error: the output's reader went away (broken pipe)", err=True)
            # Python would complain again when it flushes the dead stdout at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(141)
        if os.environ.get("VSR_PIPE_DEBUG"):
            return False
        click.echo(
            f"vsr-pipe: internal error: {type(exc).__name__}: {exc} (set VSR_PIPE_DEBUG=1 for details)", err=True
        )
        sys.exit(70)


def stopped(caught: list[int], output: str, frames: int) -> Interrupted | None:
    """The error a run stopped by a signal ends with: what the output holds."""
    if not caught:
        return None
    held = f"{output} holds the {frames} frames done so far" if frames else "no output written"
    return Interrupted(f"stopped by {signal.Signals(caught[0]).name}: {held}", caught[0])
