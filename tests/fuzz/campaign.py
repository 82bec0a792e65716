"""Fuzz the command line with damaged copies of the project's own clips; every case must end cleanly.

    python -m tests.fuzz.campaign --cases 2000 --out runs/fuzz            # the campaign (docs/reliability.md)
    python -m tests.fuzz.campaign --cases 40 --start 7000 --out /tmp/f    # a slice (what CI runs)
    python -m tests.fuzz.campaign --replay 1234 --out /tmp/f              # one case again, same bytes

Run from the repository root. The cases (base clips, mutations) live in ``tests/fuzz/mutate.py``.

Case ``i`` is reproducible from ``i`` and ``--seed`` alone: its base clip, mutation kind and every
byte it changes come from ``random.Random(f"{seed}:{i}")``. The base clips are made by
``tests/media.py::make_clip`` (MP4 H.264 + AAC + mov_text, Matroska with FLAC and SubRip, MPEG-TS
H.264 + MP2, WebM VP9, 10-bit 4:2:0, odd-size FFV1, 4:2:2). Each case runs
``vsr-pipe IN -o OUT --model bicubic -q`` (one case in ten with the default model, some at x1.5)
under a time limit, and passes when it

- exits 0 with an output that decodes to at least one frame, or
- exits 1 or 2 with a short message (every stderr line starts ``vsr-pipe:``, at most 4 lines),

and never prints a traceback, dies by a signal, hangs, exits otherwise (70 is an internal error),
or leaves a ``.*.partial-*`` file. Most cases run in a child forked from a process that has already
imported the CLI (the same ``main``, exit codes and stderr, without 1.5 s of interpreter start);
``--subprocess-share`` of them (default 1 in 4) run as a real ``python -m vsr_pipe``.

Writes ``summary.json`` (per-kind table, failures with their reproduction) and keeps each failing
input under ``failures/``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from tests.fuzz.mutate import BASES, make_bases, plan_case

ROOT = Path(__file__).resolve().parents[2]
TIME_LIMIT_S = 60.0


# --- running ---------------------------------------------------------------------------------------


def _argv(src: Path, dst: Path, model: str, scale: str) -> list[str]:
    return [str(src), "-o", str(dst), "--model", model, "--scale", scale, "-q"]


def run_forked(argv: list[str], limit_s: float, workdir: Path) -> tuple[int | None, str, float]:
    """Run the CLI's ``main`` in a child forked from this (warm) process; (exit code or -signal,
    stderr, seconds). None as the code: killed after ``limit_s``."""
    err_path = workdir / "stderr.txt"
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: what `python -m vsr_pipe ARGV` does, minus the interpreter start
        code = 1
        try:
            fd = os.open(str(err_path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(fd, 2)
            nul = os.open(os.devnull, os.O_WRONLY)
            os.dup2(nul, 1)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            from vsr_pipe.cli import main

            try:
                main(argv, prog_name="vsr-pipe")
                code = 0
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except BaseException:  # what the interpreter would print for an escaped exception
                import traceback

                traceback.print_exc()
                code = 1
        finally:
            try:
                sys.stderr.flush()
                sys.stdout.flush()
            except BaseException:
                pass
            os._exit(code)
    return _wait(pid, limit_s, started, err_path)


def _cpu_s(pid: int) -> float:
    """CPU seconds used so far by process ``pid`` (user + system)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _wait(pid: int, limit_s: float, started: float, err_path: Path) -> tuple[int | None, str, float]:
    """Wait for the child. Past ``limit_s`` it is a hang only if it also made no progress (no CPU time)
    over the last 5 s: on a loaded machine a niced child can be starved for a minute, and that is not
    a hang; ten times the limit is one whatever its progress."""
    code: int | None = None
    checked, cpu = started + limit_s, 0.0
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            break
        now = time.monotonic()
        if now > checked:
            used = _cpu_s(pid)
            if used <= cpu + 0.01 or now - started > 10 * limit_s:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                break
            checked, cpu = now + 5.0, used
        time.sleep(0.02)
    stderr = err_path.read_text(errors="replace") if err_path.exists() else ""
    return code, stderr, time.monotonic() - started


def run_subprocess(argv: list[str], limit_s: float) -> tuple[int | None, str, float]:
    """Run ``python -m vsr_pipe ARGV`` as a user would."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("VSR_PIPE_DEBUG", None)
    started = time.monotonic()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-m", "vsr_pipe", *argv], stdout=subprocess.DEVNULL, stderr=err,
                                cwd=ROOT, env=env)  # fmt: skip
        code, _, seconds = _wait(proc.pid, limit_s, started, Path("/nonexistent"))
        proc.returncode = code if code is not None else -9  # reaped by _wait
        err.seek(0)
        return code, err.read().decode(errors="replace"), seconds


def classify(code: int | None, stderr: str, out: Path, folder: Path) -> str:
    """``ok``, ``clean_error``, or the failure: hang, signal, traceback, bad_exit, long_message,
    stray_temp, undecodable."""
    if list(folder.glob(".*.partial-*")):
        return "stray_temp"
    if code is None:
        return "hang"
    if code < 0:
        return "signal"
    if "Traceback" in stderr:
        return "traceback"
    lines = [line for line in stderr.splitlines() if line.strip()]
    if code == 0:
        return "ok" if _decodes(out) else "undecodable"
    if code not in (1, 2):
        return "bad_exit"
    if not lines or len(lines) > 4 or any(not line.startswith("vsr-pipe:") or len(line) > 400 for line in lines):
        return "long_message"
    return "clean_error"


def _decodes(path: Path) -> bool:
    import av

    if not path.is_file():
        return False
    try:
        with av.open(str(path)) as c:
            return sum(1 for _ in c.decode(video=0)) > 0
    except Exception:  # noqa: BLE001 (any failure to read it back is the finding)
        return False


PASS = ("ok", "clean_error")


def run_case(plan: dict, workdir: Path, use_subprocess: bool, limit_s: float) -> tuple[dict, Path, Path]:
    folder = workdir / f"case{plan['case']}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    ext = Path(BASES[plan["base"]][0]).suffix
    src, out = folder / f"in{ext}", folder / f"out{'.mkv' if ext in ('.ts', '.webm') else ext}"
    src.write_bytes(plan["data"])
    argv = _argv(src, out, plan["model"], plan["scale"])
    runner = "subprocess" if use_subprocess else "fork"
    code, stderr, seconds = run_subprocess(argv, limit_s) if use_subprocess else run_forked(argv, limit_s, folder)
    outcome = classify(code, stderr, out, folder)
    result = {k: plan[k] for k in ("case", "base", "kind", "model", "scale")}
    result.update(runner=runner, code=code, outcome=outcome, seconds=round(seconds, 2))
    result["stderr"] = stderr.strip()[-600:]
    result["sha256"] = hashlib.sha256(plan["data"]).hexdigest()[:16]
    return result, folder, src


def summarise(results: list[dict]) -> dict:
    table = defaultdict(Counter)
    for r in results:
        table[r["kind"]]["cases"] += 1
        table[r["kind"]][r["outcome"]] += 1
        table[r["kind"]][r["runner"]] += 1
    failures = [r for r in results if r["outcome"] not in PASS]
    return {
        "cases": len(results),
        "failures": len(failures),
        "by_kind": {k: dict(v) for k, v in sorted(table.items())},
        "by_base": dict(Counter(r["base"] for r in results)),
        "outcomes": dict(Counter(r["outcome"] for r in results)),
        "seconds": round(sum(r["seconds"] for r in results), 1),
        "failed_cases": failures,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=200)
    ap.add_argument("--start", type=int, default=0, help="first case id")
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--out", default="runs/fuzz")
    ap.add_argument("--replay", type=int, nargs="*", default=None, help="run only these case ids")
    ap.add_argument("--subprocess-share", type=float, default=0.25, help="share of cases run as a real CLI process")
    ap.add_argument("--time-limit", type=float, default=TIME_LIMIT_S)
    ap.add_argument("--budget-s", type=float, default=0, help="stop starting cases after this many seconds (0: none)")
    ap.add_argument(
        "--merge", nargs="+", default=None, help="only write --out/summary.json from these runs' cases.jsonl"
    )
    args = ap.parse_args(argv)

    out = Path(args.out)
    if args.merge:  # one table for a campaign run in parts (several processes, or resumed)
        results = [json.loads(line) for d in args.merge for line in (Path(d) / "cases.jsonl").read_text().splitlines()]
        summary = summarise(results)
        summary.update(seed=args.seed, parts=args.merge)
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(f"{summary['cases']} cases, {summary['failures']} failures; outcomes {summary['outcomes']}")
        for kind, row in summary["by_kind"].items():
            print(f"  {kind:11s} {row}")
        return 0
    (out / "failures").mkdir(parents=True, exist_ok=True)
    bases = make_bases(out / "base")
    import vsr_pipe.cli  # noqa: F401  (warm the forking parent: the children start with it imported)
    import vsr_pipe.pipeline.run  # noqa: F401

    ids = args.replay if args.replay is not None else range(args.start, args.start + args.cases)
    results, started = [], time.monotonic()
    log = open(out / "cases.jsonl", "a")
    every = max(1, round(1 / args.subprocess_share)) if args.subprocess_share > 0 else 0
    with tempfile.TemporaryDirectory(prefix="vsr-fuzz-") as tmp:
        for case in ids:
            if args.budget_s and time.monotonic() - started > args.budget_s:
                break
            plan = plan_case(case, args.seed, bases)
            use_sub = bool(every) and case % every == 0
            result, folder, src = run_case(plan, Path(tmp), use_sub, args.time_limit)
            results.append(result)
            log.write(json.dumps(result) + "\n")
            log.flush()
            if result["outcome"] not in PASS:
                kept = out / "failures" / f"case{case}-{plan['base']}-{plan['kind']}{src.suffix}"
                shutil.copy(src, kept)
                print(f"FAIL case {case} {plan['base']} {plan['kind']}: {result['outcome']} "
                      f"(exit {result['code']}) {result['stderr'][-300:]!r}", flush=True)  # fmt: skip
            shutil.rmtree(folder, ignore_errors=True)
    summary = summarise(results)
    summary.update(
        seed=args.seed,
        start=args.start,
        command=" ".join(["python", "-m", "tests.fuzz.campaign", *(argv or sys.argv[1:])]),
    )
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"{summary['cases']} cases, {summary['failures']} failures, {summary['seconds']} s; outcomes {summary['outcomes']}"
    )
    for kind, row in summary["by_kind"].items():
        print(f"  {kind:11s} {row}")
    return 1 if summary["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
