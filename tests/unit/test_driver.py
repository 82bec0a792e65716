"""One driver (``pipeline/run.py``): no other module takes chunks from a run's threads or gives
them back by hand, so that what a run tells its deadlines and its summary is said in one place."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The threads themselves, and the one driver over them.
OWNERS = {Path("vsr_pipe/pipeline/run.py"), Path("vsr_pipe/pipeline/threads.py")}
BY_HAND = {"StreamRun", "open_run"}
RUN_CALLS = {"chunks", "delivered", "encoded", "done"}


def drives_by_hand(path: Path) -> list[str]:
    """Where ``path`` names the run's threads or its opener, or calls a run's chunk hand-over."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Name) and node.id in BY_HAND:
            found.append(f"{node.lineno}: {node.id}")
        elif isinstance(node, ast.Attribute) and node.attr in BY_HAND:
            found.append(f"{node.lineno}: .{node.attr}")
        elif isinstance(node, ast.ImportFrom):
            found += [f"{node.lineno}: imports {a.name}" for a in node.names if a.name in BY_HAND]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in RUN_CALLS:
            receiver = ast.unparse(node.func.value)
            if receiver == "run" or receiver.endswith((".run", "_run")):
                found.append(f"{node.lineno}: {receiver}.{node.func.attr}()")
    return found


def test_only_the_driver_drives_a_run():
    files = [*(ROOT / "vsr_pipe").rglob("*.py"), *(ROOT / "bench").rglob("*.py")]
    found = [
        f"{path.relative_to(ROOT)}:{where}"
        for path in sorted(files)
        if path.relative_to(ROOT) not in OWNERS
        for where in drives_by_hand(path)
    ]
    assert found == [], "drive runs through vsr_pipe.pipeline.run (drive, run_to_file, iter_planes)"


def test_the_pin_sees_a_caller_that_drives_by_hand(tmp_path):
    by_hand = tmp_path / "by_hand.py"
    by_hand.write_text(
        "from vsr_pipe.pipeline.run import open_run\n"
        "opened = open_run('a.mp4', None)\n"
        "for chunk in opened.run.chunks():\n"
        "    opened.run.done(chunk)\n"
        "pending.done()\n"
    )
    assert len(drives_by_hand(by_hand)) == 4  # the import, the call, chunks(), done(); not a future's done()
