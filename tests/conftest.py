"""Shared fixtures: real frames cut from the bundled sample clip, never synthetic pictures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from codeclab.config import SAMPLE_CLIP
from codeclab.frames import Frame
from codeclab.media import Clip, load_clip, write_y4m

CODECLAB = [sys.executable, "-m", "codeclab"]


def cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real command line in a fresh interpreter, as a person would."""
    return subprocess.run(
        [*CODECLAB, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def crop(frame: Frame, width: int, height: int, x: int = 0, y: int = 0) -> Frame:
    """A window of a 4:2:0 frame (x, y, width, height even)."""
    luma, u, v = frame
    return (
        np.ascontiguousarray(luma[y : y + height, x : x + width]),
        np.ascontiguousarray(u[y // 2 : (y + height) // 2, x // 2 : (x + width) // 2]),
        np.ascontiguousarray(v[y // 2 : (y + height) // 2, x // 2 : (x + width) // 2]),
    )


@pytest.fixture(scope="session")
def sample() -> Clip:
    return load_clip(SAMPLE_CLIP)


@pytest.fixture(scope="session")
def small_clip_path(tmp_path_factory: pytest.TempPathFactory, sample: Clip) -> Path:
    """Four frames of a 96x64 window of the sample, where cars move: fast end-to-end runs."""
    path = tmp_path_factory.mktemp("clips") / "cars_96x64.y4m"
    return write_y4m(path, [crop(f, 96, 64, 112, 96) for f in sample.frames[:4]], sample.fps)


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated CODECLAB_HOME (and working directory without a codeclab.toml)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CODECLAB_HOME", str(tmp_path / "lab"))
    return tmp_path / "lab"
