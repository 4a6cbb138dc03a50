"""codeclab: a lab where an AI designs video codecs and the lab measures them honestly."""

__version__ = "0.1.0"
