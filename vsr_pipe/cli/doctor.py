"""``vsr-pipe doctor``: what this machine offers."""

from __future__ import annotations

import click


@click.command()
def doctor() -> None:
    """Print what this machine offers: engines, devices, codecs, versions."""
    from ..doctor import doctor_rows

    for key, value in doctor_rows():
        click.echo(f"{key:18s} {value}")
