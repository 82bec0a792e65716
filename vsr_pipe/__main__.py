import os
import signal


def _stopped_while_loading(signum, frame):  # the command's own handlers are not installed yet
    os.write(2, f"vsr-pipe: interrupted by {signal.Signals(signum).name} before any output was written\n".encode())
    os._exit(128 + signum)


for _sig in (signal.SIGINT, signal.SIGTERM):
    signal.signal(_sig, _stopped_while_loading)

from .cli import main  # noqa: E402 (after the handlers: a Ctrl-C while importing is answered too)

main()
