"""Errors a user can cause. Each carries a one-line message with the value and what is allowed.

Every class derives from :class:`VsrPipeError` and also from the builtin that fits, so callers can
catch either (``except FileNotFoundError`` still works), as PyAV's error tree does.
"""

from __future__ import annotations


class VsrPipeError(Exception):
    """Base of every error vsr-pipe raises on purpose; ``str(e)`` is a complete one-line message."""

    exit_code = 1


class InputNotFound(VsrPipeError, FileNotFoundError):
    """The input path does not exist."""


class NotAVideo(VsrPipeError, ValueError):
    """The input cannot be opened as media, or holds no video stream."""


class UnsupportedInput(VsrPipeError, ValueError):
    """The input is media, but of a kind vsr-pipe cannot process (codec, pixel format, size)."""


class InvalidOption(VsrPipeError, ValueError):
    """An option's value is out of range or malformed (scale, size, codec, pixel format...)."""


class OutputError(VsrPipeError, OSError):
    """The output cannot be written where asked (same as input, unwritable folder, ...)."""


class OutputExists(OutputError, FileExistsError):
    """The output file exists and overwriting was refused (-n)."""


class InputLost(VsrPipeError, ConnectionError):
    """A network input ended or stalled and did not come back within the reconnect timeout."""


class WeightsError(VsrPipeError, ValueError):
    """Model weights are missing, malformed, or do not match the architecture."""


class EngineUnavailable(VsrPipeError, RuntimeError):
    """The requested inference engine or device is not available on this machine."""


class EncoderUnavailable(VsrPipeError, RuntimeError):
    """The requested video encoder is compiled in but does not open here (a hardware encoder with no device)."""


class Interrupted(VsrPipeError):
    """The run was stopped by a signal; the output holds the frames done so far."""

    def __init__(self, message: str, signal_number: int):
        super().__init__(message)
        self.signal_number = signal_number
        self.exit_code = 128 + signal_number
