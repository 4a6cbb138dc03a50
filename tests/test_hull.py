"""The upper-left convex hull of RD points, and its use for program families in a campaign."""

from __future__ import annotations

import pytest

from codeclab.campaign import family_hulls, family_of
from codeclab.evaluate.rd import around, bd_rate, convex_hull, hull_indices
from codeclab.record import BaselineCurve, BaselineRungRecord, ExperimentRecord, RungResult


def test_dominated_and_concave_points_leave_the_hull() -> None:
    points = [(100, 30), (200, 34), (300, 35), (400, 38), (150, 29), (500, 38), (250, 33)]
    # (150, 29) and (500, 38) are dominated; (300, 35) and (250, 33) lie under the chords
    assert convex_hull(points) == [(100.0, 30.0), (200.0, 34.0), (400.0, 38.0)]
    assert hull_indices(points) == [0, 1, 3]


def test_hull_of_a_concave_curve_is_the_curve_in_rate_order() -> None:
    curve = [(800, 40.5), (100, 31.0), (400, 37.6), (200, 34.4)]
    assert convex_hull(curve) == sorted((float(r), float(m)) for r, m in curve)


def test_points_on_a_chord_and_ties_keep_the_cheaper_ends() -> None:
    # (200, 35) is exactly on the chord from (100, 30) to (300, 40): not a vertex
    assert convex_hull([(100, 30), (200, 35), (300, 40)]) == [(100.0, 30.0), (300.0, 40.0)]
    # same quality for more bits is never on the hull; same rate keeps the better quality
    assert convex_hull([(100, 30), (100, 32), (150, 32)]) == [(100.0, 32.0)]
    assert convex_hull([]) == [] and convex_hull([(5, 1)]) == [(5.0, 1.0)]


def test_log_rate_hull_differs_where_it_should() -> None:
    # 400 is midway between 100 and 1600 in log-rate: the chord there is at 35 dB
    assert convex_hull([(100, 30), (400, 36), (1600, 40)], log_rate=True) == [
        (100.0, 30.0),
        (400.0, 36.0),
        (1600.0, 40.0),
    ]
    under = [(100, 30), (400, 34), (1600, 40)]
    assert convex_hull(under, log_rate=True) == [(100.0, 30.0), (1600.0, 40.0)]
    # in linear rate the chord at 400 kbps is at 32 dB, so 34 dB stays on the hull
    assert convex_hull(under) == [(100.0, 30.0), (400.0, 34.0), (1600.0, 40.0)]


def experiment(name: str, points: list[tuple[float, float]]) -> ExperimentRecord:
    rung = dict(
        clip="c", bytes=1, frames=1, width=2, height=2, fps=1.0, bpp=1.0, encode_s=0.0,
        decode_s=0.0, psnr_u=40.0, psnr_v=40.0, psnr_yuv=40.0, ssim_y=0.9,
    )  # fmt: skip
    anchor = [(100.0, 31.0), (200.0, 34.0), (400.0, 37.0), (800.0, 40.0)]
    return ExperimentRecord(
        experiment_id=name,
        status="ok",
        program_sha256=name * 4,
        program_name=name,
        designer="evolve",
        isolation="strong",
        source_bytes=1,
        qualities=[10 * (i + 1) for i in range(len(points))],
        results=[
            RungResult(
                **rung,
                kbps=k,
                psnr_y=p,
                quality=10 * (i + 1),
                clip_sha256="c" * 64,
                bitstream_sha256="0",
                decoded_sha256="0",
            )  # fmt: skip
            for i, (k, p) in enumerate(points)
        ],
        baselines={
            "x265": [
                BaselineCurve(
                    encoder="x265",
                    version="v",
                    settings={},
                    clip_sha256="c" * 64,
                    rungs=[
                        BaselineRungRecord(**rung, kbps=k, psnr_y=p, crf=37 - 5 * i)
                        for i, (k, p) in enumerate(anchor)
                    ],
                )  # fmt: skip
            ]
        },
    )


def test_families_share_a_name_before_the_tilde_and_get_one_hull() -> None:
    assert family_of("intra_dct~step+block") == "intra_dct" == family_of("intra_dct")
    low = experiment("intra_dct", [(100, 32), (200, 33), (400, 36)])
    high = experiment("intra_dct~step", [(150, 33.5), (300, 36.5), (600, 39)])
    other = experiment("inter_mc", [(100, 35), (300, 39)])
    hulls = {h.family: h for h in family_hulls([low, high, other])}
    assert set(hulls) == {"intra_dct", "inter_mc"}
    family = hulls["intra_dct"]
    assert family.programs == 2
    assert [(p.program_name, p.kbps) for p in family.points] == [
        ("intra_dct", 100),
        ("intra_dct~step", 150),
        ("intra_dct~step", 300),
        ("intra_dct~step", 600),
    ]
    # over x265's standard range: its span at CRF 37..22, 31..40 dB
    anchor = [(r.kbps, r.psnr_y) for r in low.baselines["x265"][0].rungs]
    hull = [(p.kbps, p.psnr_y) for p in family.points]
    expected, _ = bd_rate(anchor, around(hull, (31.0, 40.0)), metric_range=(31.0, 40.0))
    assert family.bd_rate_x265 == pytest.approx(expected) and expected is not None
    assert hulls["inter_mc"].programs == 1
