"""The bench counts baseline encodes that ran at once on several cores once, not twice."""

from __future__ import annotations

import json
import os
from pathlib import Path

from codeclab.evaluate import bench
from codeclab.evaluate.baselines import RUNG_JSON


def entry(cache: Path, name: str, encoder: str, crf: int, encode_s: float, end: float) -> str:
    folder = cache / "baselines" / name
    folder.mkdir(parents=True)
    stream = folder / "stream.bin"
    stream.write_bytes(b"\0" * 10)
    os.utime(stream, (end, end))  # the encode's last write
    rung = {"encoder": encoder, "crf": crf, "encode_s": encode_s, "bitstream": stream.name}
    (folder / RUNG_JSON).write_text(json.dumps({"rung": rung}))
    return name


def test_overlapping_encodes_count_once_and_unused_ones_not_at_all(tmp_path: Path) -> None:
    created = {
        entry(tmp_path, "a", "x264", 22, 2.0, 1002.0),  # 1000..1002
        entry(tmp_path, "b", "x264", 27, 2.0, 1003.0),  # 1001..1003, at once with a
        entry(tmp_path, "c", "x265", 22, 1.0, 1010.0),  # 1009..1010, alone
        entry(tmp_path, "d", "x264", 17, 5.0, 1010.0),  # started ahead, not on the curve
    }
    rungs = {("x264", 22), ("x264", 27), ("x265", 22)}
    assert bench._encoding_wall_s(tmp_path, created, rungs) == 4.0
