"""Hides an import inside a string and runs it with exec: refused statically."""


def encode(frames, fps, quality):
    exec("import os; os.system('id')")
    return b""


def decode(bitstream):
    return []
