"""Writes the decoder's result files itself, with decoded.yuv a link to the source clip.

The test writes the true source path into GUESSED_PATHS. A lab that followed the link would
score the source against itself.
"""

import json
import os

GUESSED_PATHS: list[str] = []


def encode(frames, fps, quality):
    height, width = frames[0][0].shape
    return json.dumps({"count": len(frames), "width": width, "height": height}).encode()


def decode(bitstream):
    with open("decoded.json", "w") as meta:
        meta.write(bitstream.decode())
    os.symlink(GUESSED_PATHS[0], "decoded.yuv")
    os._exit(0)
