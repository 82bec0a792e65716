"""Kept for importers not yet moved: the resizer lives in :mod:`vsr_pipe.models.matlab_resize`."""

from ..models.matlab_resize import imresize, imresize_matrix

__all__ = ["imresize", "imresize_matrix"]
