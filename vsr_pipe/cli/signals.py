"""SIGINT/SIGTERM from the command's start to its exit: stop a run cleanly on the first signal,
at once on the second, and always leave with 128 + n (130 after Ctrl-C, 143 after SIGTERM)."""

from __future__ import annotations

import os
import signal
import sys
import threading


class _Stopped(KeyboardInterrupt):
    """A signal that stops the command at once (before a run, or the second one during it)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _SignalState:
    """SIGINT/SIGTERM from the command's start to its exit. Before a run, a signal stops the command
    at once (exit 128 + n, no output); while a run streams, the first sets its ``stop`` event (the
    output is finalised) and a second stops at once (no output); once the exit is under way, it
    leaves with 128 + n, so a late Ctrl-C never kills the process by the signal itself."""

    def __init__(self):
        self.caught: list[int] = []
        self.stop: threading.Event | None = None
        self.exiting = False
        self.installed = False

    def install(self) -> None:
        if not self.installed and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, self._handler)
            self.installed = True

    def _handler(self, signum, frame) -> None:
        first = not self.caught
        self.caught.append(signum)
        if self.exiting:  # everything is written; the exit code still says a signal came
            self.exit_now(False)
        if self.stop is not None and first:
            self.stop.set()
            return
        raise _Stopped(signum)

    def exit_now(self, say: bool) -> None:
        signum = self.caught[0]
        if say:  # an upscale stopped here has written nothing yet; other commands keep what they saved
            os.write(2, f"vsr-pipe: interrupted by {signal.Signals(signum).name}\n".encode())
        try:
            sys.stdout.flush()
        except Exception:  # noqa: BLE001 (a closed pipe: nothing more to say)
            pass
        os._exit(128 + signum)


SIGNALS = _SignalState()


class stop_on_signals:
    """While inside, SIGINT/SIGTERM set ``stop`` (and are noted in ``caught``) instead of killing;
    a second one raises KeyboardInterrupt (no output is kept)."""

    def __init__(self, stop: threading.Event, caught: list):
        self.stop, self.caught = stop, caught
        self.installed_here = False

    def __enter__(self):
        self.installed_here = not SIGNALS.installed
        SIGNALS.install()
        SIGNALS.caught, SIGNALS.stop = self.caught, self.stop  # kept after the run: a late signal is noted
        return self

    def __exit__(self, *exc):
        if self.installed_here and SIGNALS.installed:  # called as a library (tests): give the handlers back
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            SIGNALS.installed, SIGNALS.stop, SIGNALS.caught = False, None, []
        return False
