"""The ``vsr-pipe`` command: parse options into config objects, call the library, print.

``vsr-pipe INPUT -o OUTPUT --scale S`` upscales; the other commands are subcommands, one module
each. Errors print one line on stderr and exit non-zero (130/143 after Ctrl-C/SIGTERM).
"""

from __future__ import annotations

import sys

import click

from .._version import __version__
from .batch import batch
from .deliver import deliver
from .doctor import doctor
from .eval import eval_group
from .export import export_cmd
from .restore import restore
from .signals import SIGNALS
from .train import train
from .upscale import upscale


class DefaultCommandGroup(click.Group):
    """A group whose first argument, when it is not a subcommand, goes to ``upscale``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            args = ["upscale", *args]
        return super().parse_args(ctx, args)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[override]
        """Click's standalone handling, except that a usage error is one line like every other error."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        SIGNALS.install()  # before the heavy imports: a Ctrl-C while loading is not lost
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            if isinstance(exc, getattr(click.exceptions, "NoArgsIsHelpError", ())):
                exc.show()  # bare "vsr-pipe": the help, as click shows it
            else:
                click.echo(f"vsr-pipe: error: {exc.format_message()} (see --help)", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            if SIGNALS.caught:  # click turns the KeyboardInterrupt a signal raised into Abort
                SIGNALS.exit_now(True)
            click.echo("Aborted!", err=True)
            sys.exit(1)
        SIGNALS.exiting = True
        sys.exit(result if isinstance(result, int) else 0)


@click.group(cls=DefaultCommandGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vsr-pipe")
def main() -> None:
    """Rescale video with neural networks, as a stream.

    \b
    vsr-pipe input.mp4 --scale 1.5 -o out.mp4
    vsr-pipe input.mkv --size 3840x2160 --codec libx265 -o out.mkv
    vsr-pipe - -f matroska --scale 2 -o - < in.mkv > out.mkv
    """


for _command in (upscale, train, eval_group, export_cmd, doctor, batch, deliver, restore):
    main.add_command(_command)

__all__ = ["main"]
