"""Imports socket to send the frames to a server and fetch them back: refused statically."""

import socket


def encode(frames, fps, quality):
    socket.create_connection(("192.0.2.1", 9), timeout=1).sendall(frames[0][0].tobytes())
    return b""


def decode(bitstream):
    return []
