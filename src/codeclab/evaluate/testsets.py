"""Test sets: which clips an experiment runs on, and which of them designers may see scores of.

A named set is built in (``natural``: short lossless cuts of camera-captured clips, shipped
in ``codeclab/data/natural``) or configured (``[test_sets.NAME]`` in ``codeclab.toml``); it
lists train and holdout clips. The default set is the configured clips (the bundled sample,
or those given with ``--clip``).
The record keeps results for every clip, but the designer's fitness uses train clips only,
and the leaderboard figure and the target check use holdout clips (DESIGN.md section 4).
When there is nothing to hold out, the holdout is the train set and the record says so.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from codeclab.config import DEFAULT_TEST_SET, NATURAL_TEST_SET, Settings, TestSet
from codeclab.media import Clip, load_clip

TRAIN, HOLDOUT, BOTH = "train", "holdout", "train+holdout"

NATURAL_DIR = Path(__file__).resolve().parent.parent / "data" / "natural"
NATURAL = NATURAL_TEST_SET
NATURAL_CLIPS = {
    # file: (split, sha256 of the file). Made by scripts/make_natural_set.py; the pins make a
    # changed file refuse the run, so figures on "natural" always mean these pictures.
    "cars_320x240_16f.mkv": (
        TRAIN,
        "e1ab74fae675cf2f8add15e5861584274c815fe5e39cded91bfe3efde96754b8",
    ),
    "carphone_176x144_16f.mkv": (
        TRAIN,
        "835a5bc03eaa2c4e229511474f8e2c5a03e775b2b211996ae87a36cabe791299",
    ),
    "bikes_640x272_16f.mkv": (
        TRAIN,
        "126c2aaea84bc929fb06ac935e61b24537c26c02259e952029023043a5fd7111",
    ),
    "cisco_vt2people_320x192_9f.mkv": (
        HOLDOUT,
        "98e0afdf55dd1a584aa55e436a5b5ba64496e7ea55c90dbcb8009070b51628d0",
    ),
    "asl_book_640x480_16f.mkv": (
        HOLDOUT,
        "813e996fa3b41967c5b477457c7f125166321ccd12629ab2097022a7fa10aab1",
    ),
    "car_detection_768x432_16f.mkv": (
        HOLDOUT,
        "bf6a44838000b5427729d27d6a4c7e55afbcb651c73ba59ff901a69672635232",
    ),
}


class TestSetError(ValueError):
    """A test set cannot be used as configured (a missing clip, a pin that does not match)."""

    __test__ = False


@dataclass(frozen=True)
class TestSetPlan:
    """The split of an experiment's clips, by clip content hash."""

    __test__ = False

    name: str
    splits: dict[str, str] = field(default_factory=dict)
    holdout_is_train: bool = False
    note: str = ""

    def split_of(self, clip_sha256: str) -> str:
        return self.splits.get(clip_sha256, BOTH)

    def counts_as(self, clip_sha256: str, split: str) -> bool:
        return self.split_of(clip_sha256) in (split, BOTH)


def natural_set(root: Path = NATURAL_DIR) -> TestSet:
    """The built-in ``natural`` set, its clips looked for in ``root`` (pins unchanged)."""
    paths = {name: root / name for name in NATURAL_CLIPS}
    return TestSet(
        train=[paths[n] for n, (split, _) in NATURAL_CLIPS.items() if split == TRAIN],
        holdout=[paths[n] for n, (split, _) in NATURAL_CLIPS.items() if split == HOLDOUT],
        sha256={str(paths[n]): digest for n, (_, digest) in NATURAL_CLIPS.items()},
    )


BUILT_IN = {NATURAL: natural_set}
"""Test sets shipped with the lab, by name (``config.BUILT_IN_TEST_SETS``)."""


def named_set(settings: Settings) -> tuple[str, TestSet | None]:
    """The name of the set to run on and its definition (``None``: the default set)."""
    name = settings.test_set or DEFAULT_TEST_SET
    built_in = BUILT_IN.get(name)
    return name, built_in() if built_in else settings.test_sets.get(name)


def default_plan(clips: list[Clip]) -> TestSetPlan:
    """The default set: one clip is both train and holdout; with more, every second clip
    (the 2nd, 4th, ...) is held out, so designers never see scores of those."""
    if len(clips) == 1:
        return TestSetPlan(
            DEFAULT_TEST_SET,
            {clips[0].sha256: BOTH},
            holdout_is_train=True,
            note=f"one clip ({clips[0].name}): the holdout is the train clip",
        )
    splits = {}
    for index, clip in enumerate(clips):
        split = HOLDOUT if index % 2 else TRAIN
        splits[clip.sha256] = BOTH if splits.get(clip.sha256, split) != split else split
    holdout_is_train = all(s == BOTH for s in splits.values())
    return TestSetPlan(
        DEFAULT_TEST_SET,
        splits,
        holdout_is_train=holdout_is_train,
        note="default set: clips at even positions train, odd positions holdout",
    )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_pins(name: str, pins: dict[str, str], listed: list[Path]) -> None:
    for path in listed:
        pinned = pins.get(str(path))
        if pinned is None:
            continue
        if not path.is_file():
            raise TestSetError(f"test set {name!r}: clip {path} does not exist")
        actual = file_sha256(path)
        if actual != pinned.lower():
            raise TestSetError(
                f"test set {name!r}: {path} has sha256 {actual}, but the set pins "
                f"{pinned.lower()}; refusing to run on a different clip"
            )


def plan_for(settings: Settings, clips: list[Clip]) -> TestSetPlan:
    """The split of ``clips`` under ``settings.test_set``: by the set's lists for a named set
    (clips match by path as listed), by position for the default set."""
    name, spec = named_set(settings)
    if spec is None:
        return default_plan(clips)
    holdout = spec.holdout or spec.train
    holdout_is_train = {str(p) for p in holdout} == {str(p) for p in spec.train}
    splits: dict[str, str] = {}
    for clip in clips:
        listed = {
            split
            for split, paths in ((TRAIN, spec.train), (HOLDOUT, holdout))
            if str(clip.path) in {str(p) for p in paths}
        }
        if not listed:
            raise TestSetError(f"test set {name!r}: {clip.path} is not one of its clips")
        split = BOTH if len(listed) == 2 else listed.pop()
        previous = splits.get(clip.sha256, split)
        splits[clip.sha256] = split if previous == split else BOTH
    overlap = sorted(c.name for c in clips if splits[c.sha256] == BOTH)
    if overlap and not holdout_is_train:
        raise TestSetError(
            f"test set {name!r}: {', '.join(overlap)} in both train and holdout; a holdout "
            "clip must be unseen (list the same clips in both only when there is no other)"
        )
    note = (
        f"test set {name!r}: the holdout is the train set"
        if holdout_is_train
        else f"test set {name!r}: {len(spec.train)} train, {len(holdout)} holdout clips"
    )
    return TestSetPlan(name, splits, holdout_is_train=holdout_is_train, note=note)


def load_test_set(settings: Settings, *, loader=load_clip) -> tuple[list[Clip], TestSetPlan]:
    """The clips to run on and their split, from ``settings.test_set`` (or the default set).

    Pinned clips are checked before anything is decoded; a clip listed in both train and
    holdout is loaded once.
    """
    name, spec = named_set(settings)
    if spec is None:
        paths = list(settings.clips)
    else:
        _check_pins(name, spec.sha256, [*spec.train, *spec.holdout])
        paths = list(dict.fromkeys([*spec.train, *spec.holdout]))
    clips: list[Clip] = []
    for path in paths:
        clip = loader(
            path,
            max_frames=settings.max_frames,
            width=settings.raw_width,
            height=settings.raw_height,
            fps=settings.raw_fps,
        )
        same = next((c for c in clips if c.sha256 == clip.sha256), None)
        if same is None:
            clips.append(clip)
        elif spec is not None:
            raise TestSetError(f"test set {name!r}: {same.path} and {path} are the same pictures")
    return clips, plan_for(settings, clips)
