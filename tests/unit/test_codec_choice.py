from vsr_pipe.io.encode import _encoder_opens, resolve_codec


def test_auto_codec_is_nvenc_only_where_it_opens():
    expected = "h264_nvenc" if _encoder_opens("h264_nvenc") else "libx264"
    assert resolve_codec("auto") == expected
    assert resolve_codec("libx265") == "libx265"
    assert not _encoder_opens("no_such_encoder")
