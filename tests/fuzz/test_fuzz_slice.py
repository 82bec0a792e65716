"""A bounded slice of the fuzz campaign (``tests/fuzz/campaign.py``): one case of every mutation
kind on every base clip, about a minute; every case must end cleanly (see the campaign for what that
means)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.fuzz.mutate import KINDS, make_bases, plan_case


@pytest.mark.slow
def test_a_slice_of_the_fuzz_campaign_ends_cleanly(tmp_path):
    # Case ids 100000-100041: 7 base clips x 6 mutation kinds, each combination once; a case in four
    # runs as a real `python -m vsr_pipe`, the rest in children forked from a warm process.
    r = subprocess.run(
        [sys.executable, "-m", "tests.fuzz.campaign", "--cases", "42", "--start", "100000", "--out", str(tmp_path), "--budget-s", "240"],
        capture_output=True, text=True, cwd=ROOT, timeout=900,
    )  # fmt: skip
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["cases"] >= 20, r.stdout
    assert summary["failures"] == 0, json.dumps(summary["failed_cases"], indent=1)
    assert r.returncode == 0, r.stdout + r.stderr


def test_cases_are_reproducible_from_their_id(tmp_path):
    bases = make_bases(tmp_path / "base")
    a, b = plan_case(1234, 14, bases), plan_case(1234, 14, bases)
    assert a["data"] == b["data"] and a["kind"] == b["kind"] and a["base"] == b["base"]
    assert plan_case(1235, 14, bases)["data"] != a["data"]
    kinds = {plan_case(i, 14, bases)["kind"] for i in range(len(bases) * len(KINDS))}
    assert kinds == set(KINDS)
