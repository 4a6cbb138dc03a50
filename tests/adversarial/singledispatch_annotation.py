"""Runs code the policy never read: string annotations, which functools.singledispatch evaluates
(through typing.get_type_hints) when a function is registered. The encoder's stashes the source
frames in a file outside its work directory; the decoder's loads them back: 100 dB in one byte.
"""

import functools

import numpy as np

SEEN = []
LOADED = []
STASH = "/tmp/codeclab-adversary-singledispatch.npy"


@functools.singledispatch
def dispatch(value):
    return value


def encode(frames, fps, quality):
    SEEN.append(np.stack([frame[0] for frame in frames]))

    def stash(value: "__import__('numpy').save(STASH, SEEN[0]) or int") -> None:
        return None

    dispatch.register(stash)
    return b"s"


def decode(bitstream):
    def fetch(value: "LOADED.append(__import__('numpy').load(STASH)) or float") -> None:
        return None

    dispatch.register(fetch)
    return [(y, y[::2, ::2], y[::2, ::2]) for y in LOADED[0]]
