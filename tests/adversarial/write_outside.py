"""Tries to write a file everywhere outside its work directory (the test adds lab paths)."""

import os
import sys

NAME = "codeclab-adversary-outside"
GUESSED_PATHS: list[str] = []


def encode(frames, fps, quality):
    places = [*GUESSED_PATHS, "/", "/usr/lib", "/etc", "/root", "/var/tmp", sys.prefix]
    places += [p for p in sys.path if p]
    written = []
    for place in places:
        try:
            with open(os.path.join(place, NAME), "wb") as out:
                out.write(b"x")
            written.append(place)
        except OSError:
            pass
    if written:
        raise RuntimeError(f"wrote outside the work directory: {written}")
    raise PermissionError(f"wrote nowhere outside the work directory ({len(places)} places)")


def decode(bitstream):
    return []
