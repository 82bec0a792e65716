"""deliver reads the title chunk by chunk: the planes it fits on are the whole-title decode's (so the
resume keys are unchanged), a few chunks' planes are alive at once whatever the title's length, and
progress starts before any fit."""

from __future__ import annotations

import gc
import json
import weakref

import numpy as np
import pytest

from tests.conftest import run_cli
from tests.media import make_clip
from vsr_pipe.delivery import server
from vsr_pipe.delivery.chunks import ChunkSpan, difficulty, scene_scores, thumbnail
from vsr_pipe.delivery.fit import BaseModel, ChunkTask, FitSettings
from vsr_pipe.delivery.planes import chunk_planes, scan_master
from vsr_pipe.delivery.resume import task_key
from vsr_pipe.delivery.server import DeliverOptions, deliver
from vsr_pipe.io.keyframes import luma_frames
from vsr_pipe.runners import Outcome

TINY = FitSettings(steps=2, features=4, blocks=1, batch=2, patch=16)
# 24 frames at 24 fps in chunks of at most 3 frames: eight chunks.
OPTIONS = DeliverOptions(down="bicubic", max_seconds=0.125, fit=TINY)


@pytest.fixture(scope="module")
def master(tmp_path_factory):
    folder = tmp_path_factory.mktemp("memory")
    return make_clip(folder / "master.mp4", width=160, height=96, frames=24, audio=False).path


def test_chunk_planes_are_the_whole_title_decodes_and_hash_to_the_same_keys(tmp_path, master):
    lr_path = make_clip(tmp_path / "lr.mp4", width=80, height=48, frames=24, audio=False).path
    whole_lr = [y for y, _ in luma_frames(str(lr_path))]
    whole_hr = [y for y, _ in luma_frames(str(master))]
    spans = [ChunkSpan(0, 0, 6, 0, 0), ChunkSpan(1, 7, 15, 0, 0), ChunkSpan(2, 18, 23, 0, 0)]  # 16, 17 skipped
    base = BaseModel("espcn", "espcn_y_x2", 2, (96, 160), (48, 80))
    chunks = list(chunk_planes(str(lr_path), str(master), spans))
    assert [c.span for c in chunks] == spans
    for c in chunks:
        lr, hr = np.stack(whole_lr[c.span.first : c.span.last + 1]), np.stack(whole_hr[c.span.first : c.span.last + 1])
        assert c.lr.dtype == lr.dtype and c.lr.flags.c_contiguous and np.array_equal(c.lr, lr)
        assert c.hr.shape == hr.shape and np.array_equal(c.hr, hr)
        # The resume key of a chunk read on its own is the key of the chunk cut from the whole title.
        assert task_key(ChunkTask(c.span.index, c.lr, c.hr, base, TINY)) == task_key(
            ChunkTask(c.span.index, lr, hr, base, TINY)
        )


def test_the_scan_keeps_per_frame_scalars_equal_to_a_whole_title_scan(master):
    whole = list(luma_frames(str(master)))
    scan = scan_master(str(master), 2)
    assert scan.frames == 24 and scan.shape == (96, 160)
    assert scan.pts == [p for _, p in whole]
    assert scan.scores == scene_scores([thumbnail(y) for y, _ in whole])
    assert scan.difficulties == [difficulty(y, 2) for y, _ in whole]


class _Watch:
    """Weak references to every chunk's planes as deliver reads them, and how many were alive at most
    when a chunk was read and when a fit started."""

    def __init__(self, monkeypatch):
        self.refs: list = []
        self.most_when_read = self.most_when_fitting = 0
        self.fits: list[int] = []
        read, fit = server.chunk_planes, server.fit_chunk

        def reading(*args):
            for chunk in read(*args):
                self.refs.append(weakref.ref(chunk.hr))
                self.most_when_read = max(self.most_when_read, self.alive())
                yield chunk
                chunk = None  # noqa: F841

        def fitting(task):
            self.most_when_fitting = max(self.most_when_fitting, self.alive())
            self.fits.append(task.index)
            return fit(task)

        monkeypatch.setattr(server, "chunk_planes", reading)
        monkeypatch.setattr(server, "fit_chunk", fitting)

    def alive(self) -> int:
        gc.collect()
        return sum(r() is not None for r in self.refs)


class _ListRunner:
    """A runner that, like local processes and Ray, takes the whole task list at once (run here)."""

    workers = 2

    def __init__(self):
        self.lists: list[int] = []

    def map(self, fn, tasks, resources=None, stop=None):
        self.lists.append(len(tasks))
        for i, task in enumerate(tasks):
            yield Outcome(i, fn(task))


@pytest.mark.slow
def test_deliver_holds_a_few_chunks_planes_never_the_title(tmp_path, master, monkeypatch):
    watch = _Watch(monkeypatch)
    summary = deliver(str(master), str(tmp_path / "here"), OPTIONS)
    assert summary.chunks == 8 and watch.fits == list(range(8)) and len(watch.refs) == 8
    assert watch.most_when_read <= 2 and watch.most_when_fitting <= 2  # the one fitting, and the next

    watch = _Watch(monkeypatch)
    runner = _ListRunner()
    summary = deliver(str(master), str(tmp_path / "there"), OPTIONS, runner)
    assert summary.chunks == 8 and sorted(watch.fits) == list(range(8))
    assert runner.lists == [2, 2, 2, 2]  # windows of as many tasks as it runs at once
    assert watch.most_when_read <= 3 and watch.most_when_fitting <= 2


@pytest.mark.slow
def test_progress_starts_before_the_master_is_read_and_before_any_fit(tmp_path, master, monkeypatch):
    events: list[tuple] = []
    fit = server.fit_chunk
    monkeypatch.setattr(server, "fit_chunk", lambda task: (events.append(("fitting", task.index)), fit(task))[1])
    monkeypatch.setattr(server, "scan_master", _after(events, "reading the master", server.scan_master))
    deliver(str(master), str(tmp_path / "t"), OPTIONS, on_stage=lambda *a: events.append(("stage", *a)))
    assert events[0] == ("stage", "scan", 0, 24) and events[1] == ("reading the master",)
    starts = [e[1] for e in events if e[0] == "stage" and e[2] == 0]
    assert starts == ["scan", "lr", "decode", "fit"]
    assert events.index(("stage", "fit", 0, 8)) < events.index(("fitting", 0))
    calls = [e for e in events if e[0] == "stage"]
    assert all(a != b for a, b in zip(calls, calls[1:]))  # no line twice
    ends = [e[1:] for e in events if e[0] == "stage" and e[2] == e[3] and e[2]]
    assert ends[:3] == [("scan", 24, 24), ("lr", 24, 24), ("decode", 24, 24)] and ends[-1] == ("fit", 8, 8)


def _after(events: list, what: str, fn):
    def called(*args, **kw):
        events.append((what,))
        return fn(*args, **kw)

    return called


@pytest.mark.slow
def test_the_cli_prints_each_stage_as_it_starts_and_quiet_json_prints_json_alone(tmp_path, master):
    args = ("deliver", master, "--down", "bicubic", "--budget", "1", "--features", "4", "--blocks", "0")
    done = run_cli(*args, "-o", tmp_path / "a", "--max-seconds", "0.5")
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0] == "scanning the master: 0/24 frames"
    assert "making the LR: 0/24 frames" in lines and "decoding the LR: 0/24 frames" in lines
    assert lines.index("fitting: 0/2 chunks") < next(i for i, line in enumerate(lines) if line.startswith("[1/2]"))
    quiet = run_cli(*args, "-o", tmp_path / "b", "-q", "--json")
    assert quiet.returncode == 0 and not any(w in quiet.stderr for w in ("scanning", "making", "fitting", "[1/2]"))
    assert json.loads(quiet.stdout)["frames"] == 24
