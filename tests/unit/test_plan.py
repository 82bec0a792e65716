"""The run plan is a pure function of options and stream facts: every size and model rule, no video."""

from fractions import Fraction

import pytest

from vsr_pipe.config import PipelineOptions, Scale, WeightSchedule, WeightsSwap
from vsr_pipe.errors import InvalidOption
from vsr_pipe.io.base import ColorInfo, StreamFacts
from vsr_pipe.io.layout import FrameLayout
from vsr_pipe.io.tags import RescaleTag
from vsr_pipe.pipeline.plan import make_plan, neural_stages

YUV420 = FrameLayout(640, 360, "yuv420p")
YUV444 = FrameLayout(640, 360, "yuv444p", chroma_shift_x=0, chroma_shift_y=0)


def facts(width=640, height=360, tag=None, layout=YUV420) -> StreamFacts:
    src = FrameLayout(width, height, layout.pix_fmt, layout.bits, layout.chroma_shift_x, layout.chroma_shift_y)
    return StreamFacts("in.mp4", src, ColorInfo(1, 1, 1, 1), Fraction(1, 90000), Fraction(25), 100, 0, tag)


def plan(out=YUV420, irn_id="abc", **kw):
    f = kw.pop("facts", None) or facts()
    return make_plan(PipelineOptions(**kw), f, out, irn_id)


def test_default_is_espcn_x2_on_any_input():
    p = plan()
    assert (p.dst.width, p.dst.height) == (1280, 720)
    assert p.model == "espcn" and p.chain == "espcn x2" and p.output_tag is None and not p.notes


@pytest.mark.parametrize(
    "scale, size, stages",
    [
        (Scale(1.5, 1.5), (960, 540), ("espcn x2",)),
        (Scale(2.5, 2.5), (1600, 900), ("espcn x3",)),
        (Scale(1.5, 2), (960, 720), ("espcn x2",)),
        (Scale(5, 5), (3200, 1800), ("espcn x3", "espcn x2")),
        (Scale(8, 8), (5120, 2880), ("espcn x4", "espcn x2")),
        (Scale(1, 1), (640, 360), ()),
    ],
)
def test_scale_gives_size_and_the_next_integer_stages(scale, size, stages):
    p = plan(scale=scale)
    assert (p.dst.width, p.dst.height) == size
    assert tuple(s.describe() for s in p.luma) == stages


def test_sizes_round_to_the_output_pixel_formats_chroma_grid():
    odd = facts(853, 481)
    assert (plan(facts=odd, scale=Scale(1.5, 1.5)).dst.width, plan(facts=odd, scale=Scale(1.5, 1.5)).dst.height) == (
        1280,
        722,
    )
    p444 = plan(facts=odd, scale=Scale(2.37, 2.37), out=YUV444)
    assert (p444.dst.width, p444.dst.height) == (2022, 1140)
    with pytest.raises(InvalidOption, match="multiples of 2x2"):
        plan(size=(1001, 500))
    assert plan(size=(1001, 500), out=YUV444).dst.width == 1001


def test_absurd_output_is_refused_before_anything_runs():
    with pytest.raises(InvalidOption, match="too large"):
        plan(facts=facts(4000, 4000), scale=Scale(8, 8))


def test_a_size_follows_the_same_rule_as_a_scale():
    # espcn only grows: a size that shrinks is refused as --scale 0.5 is, naming size, factors and the way out.
    with pytest.raises(InvalidOption, match=r"size 100x100 from 640x360 \(a scale of 0.156x0.278\) is out of "
                       r"range: 1 to 8 \(to downscale, use --model irn or bicubic\)"):  # fmt: skip
        plan(size=(100, 100))
    with pytest.raises(InvalidOption, match=r"size 5760x3240 from 640x360 \(a scale of 9\) is out of range"):
        plan(size=(5760, 3240))
    # The resamplers shrink by either option, within 1/8.
    assert plan(size=(320, 180), model="bicubic").dst.width == 320
    assert plan(scale=Scale(0.5, 0.5), model="lanczos").dst.width == 320
    with pytest.raises(InvalidOption, match="out of range: 0.125 to 8"):
        plan(size=(64, 36), model="bicubic")


def test_a_size_that_stretches_the_picture_gets_a_note():
    assert not plan(size=(1280, 720)).notes and not plan(facts=facts(853, 481), size=(1280, 722)).notes
    (note,) = plan(size=(1280, 540)).notes
    assert "size 1280x540 changes the aspect ratio of 640x360 (1.78:1 -> 2.37:1)" in note


def test_irn_downscale_writes_a_tag_and_keeps_the_factor_within_four():
    p = plan(model="irn", scale=Scale(0.25, 0.25), facts=facts(642, 362))
    assert p.luma[0].kind == "irn_down" and p.dst.width * 4 >= 642 and p.dst.height * 4 >= 362
    assert p.output_tag == RescaleTag("irn_y", "abc", (642, 362), (p.dst.width, p.dst.height))
    assert p.chain.startswith("irn down")


def test_tagged_input_restores_its_original_size_with_no_option():
    tag = RescaleTag("irn_y", "abc", (1280, 720), (640, 360))
    p = plan(facts=facts(tag=tag))
    assert p.model == "irn" and p.luma[0].kind == "irn_up" and (p.dst.width, p.dst.height) == (1280, 720)
    assert p.output_tag is None and not p.notes


def test_irn_restore_says_what_it_assumed():
    untagged = plan(model="irn", scale=Scale(2, 2))
    assert "no rescaling tag" in untagged.notes[0]
    other = plan(facts=facts(tag=RescaleTag("irn_y", "zzz", (1280, 720), (640, 360))), irn_id="abc")
    assert "other irn weights" in other.notes[0]
    asked = plan(
        model="irn", scale=Scale(1.5, 1.5), facts=facts(tag=RescaleTag("irn_y", "abc", (1280, 720), (640, 360)))
    )
    assert "as asked" in asked.notes[0]


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"model": "irn", "size": (1280, 200)}, "both sides must shrink, or both grow"),
        ({"model": "irn", "size": (2600, 1440)}, "at most 4x"),
        ({"model": "espcn", "refine": 5}, "--refine works with --model irn"),
        ({"model": "irn", "scale": Scale(2, 2), "refine": 5}, "not to restoring"),
        ({"model": "irn", "scale": Scale(0.5, 0.5), "refine": 5, "engine": "onnxruntime"}, "torch engine"),
        ({"model": "irn", "scale": Scale(0.5, 0.5), "tile": 64}, "--tile works with espcn only"),
        ({"model": "bicubic", "weights": WeightSchedule((WeightsSwap(0, "w.safetensors"),))}, "exactly one model"),
    ],
)
def test_combinations_that_cannot_run_are_one_line_errors(kw, message):
    with pytest.raises(InvalidOption, match=message):
        plan(**kw)


def test_classic_kernels_run_no_model():
    p = plan(model="lanczos", scale=Scale(2, 2))
    assert p.luma == () and p.kernel == "lanczos" and p.chain == "lanczos"


def test_neural_stages():
    assert neural_stages(1) == () and neural_stages(1.01) == (2,) and neural_stages(4) == (4,)
    assert neural_stages(4.5) == (3, 2) and neural_stages(7) == (4, 2)


def test_weights_schedule_by_timestamp_or_chunk():
    by_pts = WeightSchedule((WeightsSwap(3000, "a"), WeightsSwap(9000, "b")))
    assert [by_pts.entry_at(0, pts) for pts in (0, 2999, 3000, 8999, 9000, None)] == [-1, -1, 0, 0, 1, -1]
    by_chunk = WeightSchedule((WeightsSwap(0, "a"), WeightsSwap(2, "b")), by="chunk")
    assert [by_chunk.entry_at(i, 123) for i in range(4)] == [0, 0, 1, 1]
    with pytest.raises(InvalidOption):
        WeightSchedule((WeightsSwap(5, "a"), WeightsSwap(1, "b")))


def test_live_runs_fall_back_to_the_light_model_where_one_ships_then_bicubic():
    from vsr_pipe.config import LiveOptions

    live = LiveOptions()
    f = facts()
    out = YUV420
    assert make_plan(PipelineOptions(live=live), f, out, "", frozenset({"espcn_y_x2_f16x8"})).fallbacks == (
        "espcn_y_x2_f16x8",
        "bicubic",
    )
    assert make_plan(PipelineOptions(live=live, scale=Scale(3, 3)), f, out).fallbacks == ("bicubic",)
    assert make_plan(PipelineOptions(live=LiveOptions(fallback=False)), f, out).fallbacks == ()
    assert make_plan(PipelineOptions(), f, out, "", frozenset({"espcn_y_x2_f16x8"})).fallbacks == ()
    assert make_plan(PipelineOptions(live=live, model="bicubic"), f, out).fallbacks == ()
    p = make_plan(PipelineOptions(live=live), f, out)
    assert p.chunk_frames == 1 and p.fallbacks == ("bicubic",)
