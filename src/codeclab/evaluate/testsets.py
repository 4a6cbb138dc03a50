"""Test sets: which clips an experiment runs on, and which of them designers may see scores of.

A named set (``[test_sets.NAME]`` in ``codeclab.toml``) lists train and holdout clips; the
default set is the configured clips (the bundled sample, or those given with ``--clip``).
The record keeps results for every clip, but the designer's fitness uses train clips only,
and the leaderboard figure and the target check use holdout clips (DESIGN.md section 4).
When there is nothing to hold out, the holdout is the train set and the record says so.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from codeclab.config import DEFAULT_TEST_SET, Settings
from codeclab.media import Clip, load_clip

TRAIN, HOLDOUT, BOTH = "train", "holdout", "train+holdout"


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
    name = settings.test_set or DEFAULT_TEST_SET
    spec = settings.test_sets.get(name)
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
    name = settings.test_set or DEFAULT_TEST_SET
    spec = settings.test_sets.get(name)
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
