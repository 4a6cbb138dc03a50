"""The FFmpeg command line, where one is available: for VMAF and for side-by-side benchmarks.

PyAV links FFmpeg's libraries but not libvmaf, so VMAF needs an ``ffmpeg`` binary built with
it. The ``imageio-ffmpeg`` wheel ships one (``pip install 'codeclab[vmaf]'``); an ``ffmpeg``
on PATH is the fallback. Which binary was used, and why none could be, is stated, never
guessed.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class FFmpeg:
    path: str
    version: str
    source: str  # "imageio-ffmpeg X.Y.Z" or "PATH"
    filters: frozenset[str]

    def describe(self) -> str:
        return f"ffmpeg {self.version} ({self.source})"


def _probe(path: str, source: str) -> FFmpeg | None:
    try:
        version = subprocess.run(
            [path, "-hide_banner", "-version"], capture_output=True, text=True, timeout=30
        )
        filters = subprocess.run(
            [path, "-hide_banner", "-filters"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if version.returncode != 0 or filters.returncode != 0:
        return None
    match = re.search(r"ffmpeg version (\S+)", version.stdout)
    names = {
        parts[1]
        for line in filters.stdout.splitlines()
        if len(parts := line.split()) >= 3 and "->" in parts[2]
    }
    return FFmpeg(path, match.group(1) if match else "unknown", source, frozenset(names))


@functools.cache
def find() -> tuple[FFmpeg | None, str | None]:
    """The FFmpeg binary to use, or (None, why there is none)."""
    tried = []
    try:
        import imageio_ffmpeg
    except ImportError:
        tried.append("imageio-ffmpeg is not installed (pip install 'codeclab[vmaf]')")
    else:
        try:
            path = imageio_ffmpeg.get_ffmpeg_exe()
        except RuntimeError as exc:
            tried.append(f"imageio-ffmpeg has no binary for this platform ({exc})")
        else:
            found = _probe(path, f"imageio-ffmpeg {imageio_ffmpeg.__version__}")
            if found:
                return found, None
            tried.append(f"imageio-ffmpeg's binary {path} does not run")
    on_path = shutil.which("ffmpeg")
    if on_path:
        found = _probe(on_path, "PATH")
        if found:
            return found, None
        tried.append(f"{on_path} does not run")
    else:
        tried.append("no ffmpeg on PATH")
    return None, "; ".join(tried)


def with_filter(name: str) -> tuple[FFmpeg | None, str | None]:
    """An FFmpeg that has filter ``name``, or (None, why not)."""
    found, reason = find()
    if found is None:
        return None, reason
    if name not in found.filters:
        return None, f"{found.describe()} at {found.path} has no {name} filter"
    return found, None
