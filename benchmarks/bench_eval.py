"""How fast is the lab's evaluation? Metrics vs the ffmpeg CLI on 1080p, sandbox launch,
and evaluation overhead on the sample clip, with the machine described::

    .venv/bin/python benchmarks/bench_eval.py [--json]

The same figures as ``codeclab bench``; see :mod:`codeclab.evaluate.bench`.
"""

from __future__ import annotations

import sys

from codeclab.cli import app

if __name__ == "__main__":
    sys.exit(app(["bench", *sys.argv[1:]]))
