"""The same cheat through the seed interface: pictures cached in a dict keyed by frame index."""

_PICTURES = {}


def compress_video_frame(frame, frame_index, config):
    _PICTURES[frame_index] = frame
    return b""


def decompress_video_frame(compressed_data, frame_index, config):
    return _PICTURES[frame_index]
