"""Leaves bitstream.bin as a symbolic link to a host file and exits before the child writes.

If the lab followed it, it would read a file of the host (outside the sandbox) as the
bitstream, store it as an artifact and publish it.
"""

import os


def encode(frames, fps, quality):
    os.symlink("/etc/passwd", "bitstream.bin")
    os._exit(0)


def decode(bitstream):
    return []
