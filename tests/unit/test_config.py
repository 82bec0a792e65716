import pytest

from vsr_pipe.config import PipelineOptions, Scale, output_size, parse_size
from vsr_pipe.errors import InvalidOption, VsrPipeError


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2", Scale(2, 2)),
        ("1.5", Scale(1.5, 1.5)),
        ("1.5x2", Scale(1.5, 2)),
        ("2.37", Scale(2.37, 2.37)),
        (4, Scale(4, 4)),
    ],
)
def test_scale_parses_numbers_and_pairs(text, expected):
    assert Scale.parse(text) == expected


@pytest.mark.parametrize("text", ["abc", "1.5x", "x2", "nan", "1x2x3"])
def test_scale_rejects_garbage_with_the_value_in_the_message(text):
    with pytest.raises(InvalidOption, match="scale"):
        Scale.parse(text)


@pytest.mark.parametrize("value", [0.5, 9, 100])
def test_scale_out_of_range_names_value_and_range(value):
    with pytest.raises(InvalidOption) as err:
        Scale.parse(value).check_range()
    assert f"scale {value:g} is out of range: 1 to 8" == str(err.value)
    assert isinstance(err.value, VsrPipeError) and isinstance(err.value, ValueError)


def test_output_size_rounds_to_nearest_then_to_even():
    assert output_size(640, 360, Scale(1.5, 1.5), 2, 2) == (960, 540)
    assert output_size(853, 481, Scale(2, 2), 2, 2) == (1706, 962)
    assert output_size(853, 481, Scale(1.5, 1.5), 2, 2) == (1280, 722)  # 1279.5 -> 1280, 721.5 -> 722
    assert output_size(853, 481, Scale(1.5, 1.5), 1, 1) == (1280, 722)
    assert output_size(101, 101, Scale(2.37, 2.37), 1, 1) == (239, 239)
    assert output_size(640, 360, Scale(1.5, 2), 2, 2) == (960, 720)


def test_parse_size():
    assert parse_size("1920x1080") == (1920, 1080)
    with pytest.raises(InvalidOption):
        parse_size("1920")
    with pytest.raises(InvalidOption, match="out of range"):
        parse_size("99999x10")


def test_irn_scales_down_to_a_quarter_and_back_up_to_four():
    assert Scale(0.5, 0.5).check_for("irn").is_downscale
    assert Scale(0.25, 0.5).check_for("irn").is_downscale
    assert not Scale(4, 2.5).check_for("irn").is_downscale
    for bad in (Scale(0.2, 0.5), Scale(5, 5), Scale(0.5, 2)):
        with pytest.raises(InvalidOption, match="scale"):
            bad.check_for("irn")
    with pytest.raises(InvalidOption, match="1 to 8"):
        Scale(0.5, 0.5).check_for("espcn")


def test_pipeline_options_take_scale_or_size_not_both():
    assert PipelineOptions().scale is None  # x2, or what the input's rescaling tag records
    with pytest.raises(InvalidOption):
        PipelineOptions(scale=Scale(0.5, 0.5), model="espcn")
    with pytest.raises(InvalidOption):
        PipelineOptions(scale=Scale(2, 2), size=(10, 10))
    assert PipelineOptions(scale=Scale(2, 2)).chunk_frames >= 1
