"""Connects to an outside address (TEST-NET-1, never a real host) to ship the frames out."""

import socket


def encode(frames, fps, quality):
    with socket.create_connection(("192.0.2.1", 9), timeout=2) as connection:
        connection.sendall(frames[0][0].tobytes())
    return b"\x00"


def decode(bitstream):
    return []
