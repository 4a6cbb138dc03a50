"""Carries a huge constant in its source (the test pads CODEBOOK to 300 KB).

A codebook of the very clip, embedded in the program, is bits that the bitstream does not
count. The source size is capped (256 KB by default) and the program is refused over it.
"""

CODEBOOK = ""


def encode(frames, fps, quality):
    return len(CODEBOOK).to_bytes(4, "little")


def decode(bitstream):
    return []
