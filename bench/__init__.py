"""Benchmark scripts (``python bench/NAME.py``); their shared helpers are in ``bench/common.py``."""
