"""Writes an error.json nested 30000 lists deep (under the 64 KiB cap) and exits at once.

``json.loads`` raises RecursionError, not ValueError, on nesting this deep: the lab's reader
let it through and crashed instead of recording the failure.
"""

import os

DEPTH = 30000


def encode(frames, fps, quality):
    with open("error.json", "w") as out:
        out.write('{"kind": ' + "[" * DEPTH + "]" * DEPTH + "}")
    os._exit(1)  # skip the child's own handler, which would write a well-formed record


def decode(bitstream):
    return []
