"""Encodes fine, then raises in decode with its own message."""


def encode(frames, fps, quality):
    return b"header"


def decode(bitstream):
    raise ValueError("corrupt header")
