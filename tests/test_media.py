from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from codeclab.config import SAMPLE_CLIP
from codeclab.media import MediaError, frame_to_av, load_clip, write_mp4, write_y4m
from tests.conftest import cli, crop


def test_sample_clip_geometry_rate_and_hash(sample):
    assert (sample.width, sample.height, len(sample.frames), sample.fps) == (320, 240, 30, 30.0)
    assert sample.conversions == []
    y, u, v = sample.frames[0]
    assert y.shape == (240, 320) and u.shape == v.shape == (120, 160)
    assert y.dtype == np.uint8
    # the y4m payload is the planes, byte for byte
    payload = SAMPLE_CLIP.read_bytes()
    first = payload.index(b"FRAME\n") + 6
    assert payload[first : first + 320 * 240] == y.tobytes()


def test_hash_identifies_content_not_container(sample, tmp_path):
    copy = write_y4m(tmp_path / "copy.y4m", sample.frames, sample.fps)
    assert load_clip(copy).sha256 == sample.sha256
    changed = [tuple(p.copy() for p in f) for f in sample.frames]
    changed[3][0][10, 10] ^= 1
    assert write_y4m(tmp_path / "changed.y4m", changed, 30.0) and (
        load_clip(tmp_path / "changed.y4m").sha256 != sample.sha256
    )
    assert sample.head(5).sha256 != sample.sha256


def test_raw_yuv_needs_geometry_and_matches_y4m(sample, tmp_path):
    raw = tmp_path / "cars.yuv"
    raw.write_bytes(b"".join(p.tobytes() for f in sample.frames for p in f))
    with pytest.raises(MediaError, match="--size WxH"):
        load_clip(raw)
    clip = load_clip(raw, width=320, height=240, fps=30)
    assert clip.sha256 == sample.sha256


def test_mp4_is_h264_and_close_to_source(sample, tmp_path):
    frames = sample.frames[:5]
    path = write_mp4(tmp_path / "r.mp4", frames, sample.fps)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
    back = load_clip(path)
    assert len(back.frames) == 5
    mse = np.mean((back.frames[2][0].astype(float) - frames[2][0]) ** 2)
    assert 10 * np.log10(255**2 / mse) > 40


def _encode(path: Path, frames, pix_fmt: str, codec: str, fmt: str | None = None) -> Path:
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, pix_fmt
        for frame in frames:
            for packet in stream.encode(frame_to_av(frame).reformat(format=pix_fmt)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_full_range_input_is_converted_and_said(sample, tmp_path):
    frames = [(s[0][:48, :64], s[1][:24, :32], s[2][:24, :32]) for s in sample.frames[:2]]
    path = _encode(tmp_path / "full.mkv", frames, "yuvj420p", "mjpeg")
    clip = load_clip(path)
    assert any("full-range" in note for note in clip.conversions)
    with av.open(str(path)) as container:
        raw_y = next(container.decode(video=0)).to_ndarray()[:48]
    expected = 16 + raw_y.astype(float) * 219 / 255
    assert np.abs(clip.frames[0][0] - expected).max() <= 1.5


def test_ten_bit_input_is_converted_and_said(sample, tmp_path):
    frames = [(s[0][:48, :64], s[1][:24, :32], s[2][:24, :32]) for s in sample.frames[:2]]
    path = _encode(tmp_path / "ten.mkv", frames, "yuv420p10le", "ffv1")
    clip = load_clip(path)
    assert clip.conversions == ["yuv420p10le converted to yuv420p"]
    assert np.abs(clip.frames[1][0].astype(int) - frames[1][0]).max() <= 1


def test_unreadable_files_fail_clearly(tmp_path):
    path = tmp_path / "clip.mp4"
    with pytest.raises(MediaError, match="no such file"):
        load_clip(path)
    path.write_text("not a video")
    with pytest.raises(MediaError, match="FFmpeg cannot read it"):
        load_clip(path)


def test_zero_frames_and_odd_sizes_fail_clearly(tmp_path):
    empty = tmp_path / "empty.yuv"
    empty.write_bytes(b"")
    with pytest.raises(MediaError, match="no frames"):
        load_clip(empty, width=64, height=48)
    odd = tmp_path / "odd.yuv"
    odd.write_bytes(bytes(33 * 24 * 2))
    with pytest.raises(MediaError, match="odd dimension"):
        load_clip(odd, width=33, height=24)


def _h264(path: Path, frames) -> bytes:
    """An H.264 elementary stream of ``frames``, as bytes."""
    height, width = frames[0][0].shape
    with av.open(str(path), "w", format="h264") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for frame in frames:
            for packet in stream.encode(frame_to_av(frame)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path.read_bytes()


@pytest.fixture()
def resized_clip(sample, tmp_path) -> Path:
    """Two frames at 64x48, then two at 32x32, in one H.264 stream (a new SPS mid-stream)."""
    big = [crop(f, 64, 48, 128, 96) for f in sample.frames[:2]]
    small = [crop(f, 32, 32, 128, 96) for f in sample.frames[2:4]]
    path = tmp_path / "resized.h264"
    path.write_bytes(_h264(tmp_path / "a.h264", big) + _h264(tmp_path / "b.h264", small))
    return path


@pytest.fixture()
def tiny_clip(sample, tmp_path) -> Path:
    return write_y4m(tmp_path / "tiny.y4m", [crop(f, 6, 6, 128, 96) for f in sample.frames[:2]], 30)


def test_a_picture_size_change_mid_stream_is_refused(resized_clip):
    with pytest.raises(MediaError, match=r"picture size changes from 64x48 to 32x32 at frame 2;"):
        load_clip(resized_clip)


def test_pictures_too_small_for_ssim_are_refused(tiny_clip, sample, tmp_path):
    with pytest.raises(MediaError, match=r"6x6 pictures are too small: SSIM .* at least 8x8"):
        load_clip(tiny_clip)
    narrow = tmp_path / "narrow.yuv"
    narrow.write_bytes(b"".join(p.tobytes() for p in crop(sample.frames[0], 64, 6, 128, 96)))
    with pytest.raises(MediaError, match=r"64x6 pictures are too small"):
        load_clip(narrow, width=64, height=6)
    smallest = write_y4m(tmp_path / "8x8.y4m", [crop(sample.frames[0], 8, 8, 128, 96)], 30)
    assert load_clip(smallest).width == 8


@pytest.mark.parametrize("clip", ["resized_clip", "tiny_clip"])
def test_the_cli_refuses_a_bad_clip_with_one_line(clip, request, home, tmp_path):
    path = request.getfixturevalue(clip)
    done = cli("baseline", "--clip", str(path), "--encoder", "x264", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: "), done.stderr
