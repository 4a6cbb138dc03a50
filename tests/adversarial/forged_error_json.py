"""Writes a well-formed error.json whose fields have the wrong types, and exits at once.

The lab trusted the record's shape: ``{"kind": "too_big", "size": "a lot"}`` made it call
``int("a lot")`` and crash with a traceback instead of recording the encoder's failure.
"""

import json
import os


def encode(frames, fps, quality):
    with open("error.json", "w") as out:
        json.dump({"kind": "too_big", "size": "a lot"}, out)
    os._exit(1)  # skip the child's own handler, which would write a well-formed record


def decode(bitstream):
    return []
