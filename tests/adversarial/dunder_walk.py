"""Walks from a tuple to object's subclasses to find an importer: refused statically."""


def encode(frames, fps, quality):
    classes = ().__class__.__base__.__subclasses__()
    return str(len(classes)).encode()


def decode(bitstream):
    return []
