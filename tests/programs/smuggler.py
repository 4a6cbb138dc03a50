"""Cheats: keeps the source in a module-level variable at encode and returns it at decode.

In one process this would score as lossless at ~0 bits. The lab decodes in a fresh process,
so it must get no credit.
"""

_STASH = []


def encode(frames, fps, quality):
    _STASH.clear()
    _STASH.extend(frames)
    return b"x"


def decode(bitstream):
    return list(_STASH)
