"""Compose codec programs from components: one readable, self-contained source file.

A composed program is the prelude (imports), the shared core (block helpers, bilinear motion
compensation), one component per slot, then the skeleton that wires them into ``encode``
and ``decode``. Its second line records the composition::

    # codeclab-components: transform=dct intra=directional motion=hierarchical ...

which :func:`parse_components` reads back, so the designer can swap one slot's component
(:func:`swap`) or cross two programs over (:func:`crossover`) while keeping the
``# @param`` values the parents had evolved. Every number the decoder needs (sizes, steps,
each component's ``*_config()``) travels in the bitstream header; decoding reads nothing
else.
"""

from __future__ import annotations

import re

from codeclab.design.components import PRELUDE, SLOTS, choices, get
from codeclab.design.params import parse_params, set_params

MARKER = "# codeclab-components:"
_MARKER_LINE = re.compile(r"^# codeclab-components:(?P<body>.*)$", re.MULTILINE)

DEFAULT = {
    "transform": "dct",
    "intra": "directional",
    "motion": "hierarchical",
    "subpel": "bilinear",
    "quant": "rdo",
    "entropy": "adaptive_range",
    "loopfilter": "deblock",
    "gop": "ippp",
}
# An intra-only composition, the composed counterpart of the intra_dct seed.
INTRA_DEFAULT = {**DEFAULT, "gop": "intra_only", "motion": "diamond", "subpel": "none"}

CORE = '''
def zigzag(n):
    """Flat positions (u * n + v) of an n x n block in JPEG zig-zag order."""
    order = sorted(
        ((u, v) for u in range(n) for v in range(n)),
        key=lambda p: (p[0] + p[1], p[0] if (p[0] + p[1]) % 2 else p[1]),
    )
    return np.array([u * n + v for u, v in order], dtype=np.int64)


def to_blocks(plane, b):
    """(H, W) -> (H/b, W/b, b, b)."""
    h, w = plane.shape
    return plane.reshape(h // b, b, w // b, b).transpose(0, 2, 1, 3)


def from_blocks(blocks):
    nby, nbx, b, _ = blocks.shape
    return blocks.transpose(0, 2, 1, 3).reshape(nby * b, nbx * b)


def pad_plane(plane, h, w):
    return np.pad(plane, ((0, h - plane.shape[0]), (0, w - plane.shape[1])), mode="edge")


def mv_bits(d):
    """Approximate bits of a signed Exp-Golomb vector component."""
    a = np.abs(np.asarray(d, np.float64))
    return 1.0 + 2.0 * np.floor(np.log2(2.0 * a + 1.0))


def gather(rp, ys, xs, size):
    """Blocks (N, size, size) of padded plane ``rp`` with top-left corners (ys, xs)."""
    i = np.arange(size)
    return rp[(ys[:, None] + i)[:, :, None], (xs[:, None] + i)[:, None, :]]


def sad_of(blocks, rp, pad, ys, xs, mv, b):
    """SAD of ``blocks`` against whole-pel displaced blocks of the padded reference."""
    pred = gather(rp, ys + pad + mv[:, 0], xs + pad + mv[:, 1], b)
    return np.abs(blocks - pred).sum(axis=(1, 2))


def mc_blocks(rp, pad, ys, xs, mv, b, s):
    """Bilinear prediction blocks for vectors ``mv`` in 1/s pel (padded reference)."""
    iy, ix = np.floor_divide(mv[:, 0], s), np.floor_divide(mv[:, 1], s)
    fy = ((mv[:, 0] - iy * s) / s)[:, None, None]
    fx = ((mv[:, 1] - ix * s) / s)[:, None, None]
    a = gather(rp, ys + pad + iy, xs + pad + ix, b + 1)
    top = a[:, :b, :b] * (1 - fx) + a[:, :b, 1:] * fx
    bottom = a[:, 1:, :b] * (1 - fx) + a[:, 1:, 1:] * fx
    return top * (1 - fy) + bottom * fy


def motion_compensate(ref, mv, b, s):
    """Prediction plane from ``ref`` for the block vector field ``mv`` (1/s pel)."""
    nby, nbx = mv.shape[:2]
    pad = int(np.abs(mv).max()) // s + 2
    rp = np.pad(ref.astype(np.float64), pad, mode="edge")
    ys = np.repeat(np.arange(nby) * b, nbx)
    xs = np.tile(np.arange(nbx) * b, nby)
    pred = mc_blocks(rp, pad, ys, xs, mv.reshape(-1, 2), b, s)
    return from_blocks(pred.reshape(nby, nbx, b, b))
'''

SKELETON = '''
# Global multiplier of the quantiser step at every quality.
QP_SCALE = 1.0  # @param float 0.25..4.0
# Quality points per doubling of the quantiser step (where the ladder of qualities lands).
QUALITY_OCTAVE = 12.0  # @param float 6.0..24.0
# Quantiser step of intra pictures relative to P pictures.
I_QP_RATIO = 0.75  # @param float 0.4..1.5
# Chroma quantiser step relative to the luma step.
CHROMA_QP_RATIO = 1.2  # @param float 0.5..3.0
# Macroblock (motion block) size in luma pixels.
MB_SIZE = 16  # @param choice 8,16,32
# Motion search range in whole luma pixels.
SEARCH_RANGE = 8  # @param int 2..24
# Motion cost: SAD + MOTION_LAMBDA * step * vector bits.
MOTION_LAMBDA = 1.0  # @param float 0.0..8.0

MAGIC = b"CLCP"
HEADER = struct.Struct("<4sBIIIdB")
ENTRY = struct.Struct("<16sd")


def program_config(quality):
    """Everything the decoder needs, by name: the skeleton's numbers and each slot's."""
    step = QP_SCALE * 2.0 ** ((100 - quality) / QUALITY_OCTAVE)
    cfg = {"MB_SIZE": MB_SIZE, "SEARCH_RANGE": SEARCH_RANGE, "STEP_Y": step,
           "STEP_C": step * CHROMA_QP_RATIO, "I_QP_RATIO": I_QP_RATIO}
    for part in (transform_config, intra_config, motion_config, subpel_config, quant_config,
                 entropy_config, loopfilter_config, gop_config):
        cfg.update(part())
    return {k: float(v) for k, v in cfg.items()}


def geometry(cfg, h, w):
    b, mb = int(cfg["BLOCK_SIZE"]), int(cfg["MB_SIZE"])
    m = max(mb, 2 * b)
    return b, mb, -(-h // m) * m, -(-w // m) * m


def transform_plane(plane, m, b, zz):
    n = b * b
    blocks = to_blocks(plane, b)
    nby, nbx = blocks.shape[:2]
    return (m @ blocks @ m.T).reshape(nby * nbx, n)[:, zz], nbx


def inverse_plane(coef, m, b, unzz, shape):
    nby, nbx = shape[0] // b, shape[1] // b
    blocks = coef[:, unzz].reshape(nby, nbx, b, b)
    return from_blocks(m.T @ blocks @ m)


def intra_plane(src, levels, modes, shape, b, steps, cfg):
    """Block by block in raster order: predict from reconstructed neighbours, choose the
    mode (encoder), transform-code the residual; returns levels, modes, reconstruction."""
    m, zz = transform_matrix(b), zigzag(b)
    unzz = np.argsort(zz)
    nby, nbx = shape[0] // b, shape[1] // b
    encoding = src is not None
    if encoding:
        levels = np.zeros((nby * nbx, b * b), np.int64)
        modes = np.zeros(nby * nbx, np.int64)
    rec = np.zeros(shape)
    for by in range(nby):
        for bx in range(nbx):
            i, y0, x0 = by * nbx + bx, by * b, bx * b
            top = rec[y0 - 1, x0 : x0 + b] if by else None
            left = rec[y0 : y0 + b, x0 - 1] if bx else None
            corner = rec[y0 - 1, x0 - 1] if by and bx else None
            preds = intra_predictors(top, left, corner, b, cfg)
            if encoding:
                blk = src[y0 : y0 + b, x0 : x0 + b]
                mode = int(np.argmin(np.abs(blk[None] - preds).sum(axis=(1, 2))))
                coef = (m @ (blk - preds[mode]) @ m.T).reshape(-1)[zz]
                levels[i] = quantise(coef[None], steps, True, cfg)[0]
                modes[i] = mode
            mode = int(modes[i])
            if not 0 <= mode < len(preds):
                raise ValueError("bad intra mode")
            res = m.T @ dequantise(levels[i], steps)[unzz].reshape(b, b) @ m
            rec[y0 : y0 + b, x0 : x0 + b] = np.clip(np.floor(preds[mode] + res + 0.5), 0, 255)
    return levels, modes, rec.astype(np.uint8)


def code_picture(cfg, intra, src, ref, segments):
    """One picture. Encoder: ``src`` given, appends coded segments; decoder: reads them.
    Returns the loop-filtered reconstruction, the next picture's reference."""
    b, mb = int(cfg["BLOCK_SIZE"]), int(cfg["MB_SIZE"])
    encoding = src is not None
    shapes = [ref_shape for ref_shape in cfg["SHAPES"]]
    rec = []
    if intra:
        ratio = cfg["I_QP_RATIO"]
        for k in range(3):
            step = (cfg["STEP_Y"] if k == 0 else cfg["STEP_C"]) * ratio
            steps = quant_steps(b, step, cfg)
            count = (shapes[k][0] // b) * (shapes[k][1] // b)
            if encoding:
                lv, modes, r = intra_plane(src[k], None, None, shapes[k], b, steps, cfg)
                segments.append(entropy_encode_levels(lv, shapes[k][1] // b, cfg))
                segments.append(entropy_encode_ints(modes, cfg))
            else:
                lv = entropy_decode_levels(segments.pop(0), count, b * b, shapes[k][1] // b, cfg)
                modes = entropy_decode_ints(segments.pop(0), count, cfg)
                r = intra_plane(None, lv, modes, shapes[k], b, steps, cfg)[2]
            rec.append(loop_filter(r, b, step, cfg))
        return rec
    s = int(cfg["MV_SCALE"])
    nmy, nmx = shapes[0][0] // mb, shapes[0][1] // mb
    if encoding:
        lam = float(MOTION_LAMBDA) * cfg["STEP_Y"]
        cur, r0 = src[0].astype(np.float64), ref[0].astype(np.float64)
        mv = motion_search(cur, r0, mb, int(cfg["SEARCH_RANGE"]), lam)
        mv = subpel_refine(cur, r0, mv, mb, lam, cfg).astype(np.int64)
        segments.append(entropy_encode_ints(np.diff(mv, axis=1, prepend=0).ravel(), cfg))
    else:
        d = entropy_decode_ints(segments.pop(0), nmy * nmx * 2, cfg).reshape(nmy, nmx, 2)
        mv = np.cumsum(d, axis=1)
        if np.abs(mv).max(initial=0) > (int(cfg["SEARCH_RANGE"]) + 2) * s:
            raise ValueError("motion vector out of range")
    m, zz = transform_matrix(b), zigzag(b)
    unzz = np.argsort(zz)
    for k in range(3):
        step = cfg["STEP_Y"] if k == 0 else cfg["STEP_C"]
        steps = quant_steps(b, step, cfg)
        pred = motion_compensate(ref[k], mv, mb if k == 0 else mb // 2, s if k == 0 else 2 * s)
        nbx = shapes[k][1] // b
        if encoding:
            coef, _ = transform_plane(src[k] - pred, m, b, zz)
            lv = quantise(coef, steps, False, cfg)
            segments.append(entropy_encode_levels(lv, nbx, cfg))
        else:
            count = (shapes[k][0] // b) * nbx
            lv = entropy_decode_levels(segments.pop(0), count, b * b, nbx, cfg)
        res = inverse_plane(dequantise(lv, steps), m, b, unzz, shapes[k])
        r = np.clip(np.floor(pred + res + 0.5), 0, 255).astype(np.uint8)
        rec.append(loop_filter(r, b, step, cfg))
    return rec


def encode(frames, fps, quality):
    """Encode ``(Y, U, V)`` uint8 4:2:0 frames into a self-describing bitstream."""
    if not frames:
        raise ValueError("no frames to encode")
    h, w = np.asarray(frames[0][0]).shape
    quality = min(100, max(1, int(quality)))
    cfg = program_config(quality)
    b, mb, ph, pw = geometry(cfg, h, w)
    names = sorted(cfg)
    header = HEADER.pack(MAGIC, 1, w, h, len(frames), float(fps), len(names))
    header += b"".join(ENTRY.pack(k.encode(), cfg[k]) for k in names)
    cfg["SHAPES"] = [(ph, pw), (ph // 2, pw // 2), (ph // 2, pw // 2)]
    body, ref = [], None
    for index, frame in enumerate(frames):
        src = [
            pad_plane(np.asarray(p), *shape).astype(np.float64)
            for p, shape in zip(frame, cfg["SHAPES"])
        ]
        intra = ref is None or bool(gop_is_intra(index, cfg))
        segments = []
        ref = code_picture(cfg, intra, src, ref, segments)
        body.append(struct.pack("<BB", int(intra), len(segments)))
        body += [struct.pack("<I", len(seg)) + seg for seg in segments]
    data = header + b"".join(body)
    return data + struct.pack("<I", zlib.crc32(data))


def decode(bitstream):
    """Decode a bitstream made by :func:`encode` using nothing but its bytes."""
    data = bytes(bitstream)
    if len(data) < HEADER.size + 4 or struct.unpack("<I", data[-4:])[0] != zlib.crc32(data[:-4]):
        raise ValueError("bitstream too short or corrupted (CRC mismatch)")
    magic, version, w, h, nf, _fps, n_cfg = HEADER.unpack_from(data)
    if magic != MAGIC or version != 1 or not (0 < w <= 16384 and 0 < h <= 16384):
        raise ValueError("not a composed-codec bitstream")
    pos, cfg = HEADER.size, {}
    for _ in range(n_cfg):
        name, value = ENTRY.unpack_from(data, pos)
        cfg[name.rstrip(b"\\0").decode()] = value
        pos += ENTRY.size
    if int(cfg["BLOCK_SIZE"]) not in (4, 8, 16) or int(cfg["MB_SIZE"]) not in (8, 16, 32):
        raise ValueError("bad header")
    b, mb, ph, pw = geometry(cfg, h, w)
    cfg["SHAPES"] = [(ph, pw), (ph // 2, pw // 2), (ph // 2, pw // 2)]
    out, ref = [], None
    for _ in range(nf):
        intra, count = struct.unpack_from("<BB", data, pos)
        pos += 2
        segments = []
        for _ in range(count):
            size = struct.unpack_from("<I", data, pos)[0]
            segments.append(data[pos + 4 : pos + 4 + size])
            pos += 4 + size
        if not intra and ref is None:
            raise ValueError("first picture is not intra")
        ref = code_picture(cfg, bool(intra), None, ref, segments)
        y, u, v = ref
        out.append((y[:h, :w].copy(), u[: h // 2, : w // 2].copy(), v[: h // 2, : w // 2].copy()))
    return out
'''


def parse_components(source: str) -> dict[str, str] | None:
    """The composition a program records in its header comment, or ``None`` (hand-written)."""
    match = _MARKER_LINE.search(source)
    if not match:
        return None
    found = dict(item.split("=", 1) for item in match["body"].split() if "=" in item)
    if set(found) != set(SLOTS) or any(found[s] not in choices(s) for s in SLOTS):
        return None
    return {slot: found[slot] for slot in SLOTS}


def compose(parts: dict[str, str] | None = None, values: dict | None = None) -> str:
    """The program built from ``parts`` (slot -> component name; missing slots take the
    default); ``values`` sets any ``@param`` that exists in it (others are ignored)."""
    chosen = {**DEFAULT, **(parts or {})}
    comps = [get(slot, chosen[slot]) for slot in SLOTS]
    listing = "\n".join(f"* {c.slot}: {c.name} - {c.summary}" for c in comps)
    doc = (
        '"""Composed codec program (codeclab evolve designer).\n\n'
        "Built from interchangeable components, one per slot:\n\n"
        f"{listing}\n\n"
        "Every number the decoder needs is in the bitstream header; a CRC-32 guards it.\n"
        '"""\n'
    )
    marker = MARKER + " " + " ".join(f"{c.slot}={c.name}" for c in comps)
    sections = [doc + marker + "\n\n" + PRELUDE, "# " + "-" * 30 + " core\n" + CORE]
    for c in comps:
        sections.append(f"# {'-' * 30} {c.slot}: {c.name}\n\n{c.source}")
    sections.append("# " + "-" * 30 + " skeleton: encode / decode\n" + SKELETON)
    source = "\n\n".join(s.strip("\n") + "\n" for s in sections)
    if values:
        known = parse_params(source)
        source = set_params(source, {k: v for k, v in values.items() if k in known})
    return source


def _values(source: str) -> dict:
    return {name: p.value for name, p in parse_params(source).items()}


def swap(source: str, slot: str, name: str) -> str:
    """``source`` with ``slot`` filled by component ``name``; evolved values carry over."""
    parts = parse_components(source)
    if parts is None:
        raise ValueError("not a composed program: no component header")
    return compose({**parts, slot: name}, _values(source))


def crossover(first: str, second: str, from_second: set[str] | frozenset[str]) -> str:
    """A child taking the slots in ``from_second`` (and their parameter values) from
    ``second`` and everything else, the skeleton's parameters included, from ``first``."""
    a, b = parse_components(first), parse_components(second)
    if a is None or b is None:
        raise ValueError("crossover needs two composed programs")
    parts = {slot: (b if slot in from_second else a)[slot] for slot in SLOTS}
    values = _values(first)
    second_values = _values(second)
    for slot in from_second:
        for pname in get(slot, parts[slot]).params:
            if pname in second_values:
                values[pname] = second_values[pname]
    return compose(parts, values)
