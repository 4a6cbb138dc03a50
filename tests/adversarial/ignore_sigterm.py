"""Ignores every catchable signal a polite supervisor would send, then sleeps."""

import signal
import time


def encode(frames, fps, quality):
    for name in ("SIGTERM", "SIGINT", "SIGHUP", "SIGXCPU", "SIGXFSZ", "SIGUSR1"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    time.sleep(600)
    return b""


def decode(bitstream):
    return []
