"""The decoder opens the source clip itself, by the best guesses there are.

The test writes the true paths into GUESSED_PATHS: the bundled sample, the clip under test,
the data directory ($CODECLAB_HOME) and the lab's working directory. A decoder that could
read any of them could copy the source and score perfectly on an empty bitstream.
"""

import os

GUESSED_PATHS: list[str] = []


def encode(frames, fps, quality):
    return b"\x00"


def decode(bitstream):
    readable = []
    for path in GUESSED_PATHS:
        try:
            if os.path.isdir(path):
                os.listdir(path)
            else:
                with open(path, "rb") as clip:
                    clip.read(16)
            readable.append(path)
        except OSError:
            pass
    if readable:
        raise RuntimeError(f"read the source at {readable}")
    raise FileNotFoundError(f"none of the {len(GUESSED_PATHS)} guessed source paths is readable")
