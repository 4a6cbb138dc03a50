"""Nests 3000 directories in its work directory, with a marked file at the bottom, then fails.

The lab removes the work directory after every run. A removal that recurses once per level
(``shutil.rmtree``) ends in RecursionError (or runs out of file descriptors) past Python's
recursion limit: the lab crashed with a traceback instead of recording the encoder's failure.
"""

import os

DEPTH = 3000


def encode(frames, fps, quality):
    top = os.open(".", os.O_RDONLY)
    for _ in range(DEPTH):
        os.mkdir("d")
        os.chdir("d")
    with open("codeclab-adversary-deep.txt", "w") as marker:
        marker.write("left behind")
    os.fchdir(top)  # the child names its work directory in the traceback: come back up
    raise RuntimeError(f"nested {DEPTH} directories in the work directory")


def decode(bitstream):
    return []
