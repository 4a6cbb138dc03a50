"""Hostile programs: each ends rejected or failed, with a reason a person understands, in
bounded time, and leaves nothing behind on the host (no file, no process, no connection).

Every file in ``tests/adversarial/`` is one attempt, described in its docstring. A case runs
either through the whole runner (``evaluate``, the static policy included) or straight through
the sandbox (``run_encode``/``run_decode``), bypassing the policy: that is how the wall is
tested, with programs that already reached os, ctypes and the rest. Cases marked ``strong``
need bubblewrap and are skipped, with the reason, where it is not usable; on CI it must be
(``test_ci_has_strong_isolation``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from codeclab.config import SAMPLE_CLIP, load_settings
from codeclab.frames import Frame
from codeclab.media import Clip, load_clip
from codeclab.record import ExperimentRecord
from codeclab.runner import Job, evaluate
from codeclab.sandbox import bwrap, isolate
from codeclab.sandbox.isolate import Limits, SandboxError, run_decode, run_encode
from codeclab.store.artifacts import LocalArtifactStore
from codeclab.store.db import ExperimentStore

ADVERSARIAL = Path(__file__).parent / "adversarial"
PROGRAMS = Path(__file__).parent / "programs"
MARKER = "codeclab-adversary"  # every file a hostile program creates has this in its name
WALL_LIMITS = dict(cpu_seconds=2, wall_seconds=3.0, memory_mb=1024)
RUNNER_SETTINGS = dict(qualities=[50], baselines=[], timeout_s=3, memory_mb=512)
SECRETS = {"ANTHROPIC_API_KEY": "sk-ant-adversary", "AWS_SECRET_ACCESS_KEY": "aws-adversary"}


@dataclass(frozen=True)
class Case:
    program: str  # file stem in tests/adversarial/
    status: str  # rejected | failed
    phase: str  # the record's phase (runner), or encode | decode (sandbox)
    reason: str  # regular expression searched in the reason
    wall: bool = False  # straight through the sandbox, policy bypassed
    strong: bool = False  # only bubblewrap stops it: skipped under weak isolation
    strong_evidence: str = ""  # regular expression the program's output shows under bubblewrap
    wall_seconds: float = WALL_LIMITS["wall_seconds"]  # more for a slow but harmless search
    weak: bool = False  # through the weak launcher, in a lab process started with the secrets

    def __str__(self) -> str:
        return self.program


SMOKE = r"^smoke run on a 64x48 clip: "
CASES = [
    # Through the runner: the static policy and the contract are the first filter.
    Case("import_os", "rejected", "validation", r"import of 'os' is not allowed"),
    Case("import_socket", "rejected", "validation", r"import of 'socket' is not allowed"),
    Case("ctypes_via_numpy", "rejected", "validation", r"'\.ctypeslib' is not allowed"),
    Case("exec_generated_code", "rejected", "validation", r"'exec' is not allowed"),
    Case("dunder_walk", "rejected", "validation", r"attribute '__class__' is not allowed"),
    Case("huge_constant", "rejected", "validation", r"^source is \d+ bytes, over the cap"),
    Case(
        "singledispatch_annotation",
        "rejected",
        "validation",
        r"string annotation .* is not a plain type expression",
    ),
    Case("sparse_npz_stash", "rejected", "validation", r"'\.save_npz' is not allowed"),
    Case("strided_memory", "rejected", "validation", r"'id' is not allowed"),
    Case(
        "module_global_stash",
        "failed",
        "validation",
        SMOKE + r"decoder returned 0 frames, source has 2 frames",
    ),
    Case("seed_style_stash", "failed", "validation", SMOKE + r"decoder raised KeyError: 0"),
    Case("encode_raises", "failed", "validation", SMOKE + r"encoder raised ZeroDivisionError"),
    Case("decode_raises", "failed", "validation", SMOKE + r"decoder raised ValueError: corrupt"),
    Case(
        "wrong_frame_count",
        "failed",
        "validation",
        SMOKE + r"decoder returned 1 frames, source has 2 frames",
    ),
    Case(
        "wrong_shape",
        "failed",
        "validation",
        SMOKE + r"frame 0 plane Y: shape \(64, 48\), expected \(48, 64\)",
    ),
    Case(
        "wrong_dtype",
        "failed",
        "validation",
        SMOKE + r"decoder returned frame 0 plane Y as a \(48, 64\) float32 array",
    ),
    Case(
        "nondeterministic_decoder",
        "failed",
        "execution",
        r"decoder is not deterministic: two decodes of the same bitstream differ at frame 0 "
        r"\(the second by the published decoder file",
    ),
    Case(
        "busy_loop",
        "failed",
        "validation",
        SMOKE + r"encoder (exceeded CPU limit of 3 s|timed out after 3 s)",
    ),
    Case(
        "stdout_flood",
        "failed",
        "validation",
        SMOKE + r"encoder (exceeded CPU limit of 3 s|timed out after 3 s)",
    ),
    Case(
        "memory_bomb", "failed", "validation", SMOKE + r"encoder ran out of memory \(limit 512 MB"
    ),
    Case(
        "huge_bitstream",
        "failed",
        "validation",
        SMOKE + r"bitstream is 64\.0 MB, over the cap of 1\.0 MB",
    ),
    Case(
        "stack_depth_detects_decoder",
        "failed",
        "execution",  # each rung's second decode runs the published decoder file
        r"^cars_96x64 quality 50: published decoder does not reproduce: "
        r"the published decoder returned no frames",
    ),
    # Straight through the sandbox: limits and the lab's own reading of results.
    Case(
        "deep_directories",
        "failed",
        "encode",
        r"^encoder raised RuntimeError: nested 3000 directories in the work directory$",
        wall=True,
        wall_seconds=20.0,  # 3000 mkdirs, and as many removals, on a busy disk take seconds
    ),
    Case(
        "deep_error_json", "failed", "encode", r"^encoder exited with status 1 without", wall=True
    ),
    Case(
        "forged_error_json", "failed", "encode", r"^encoder exited with status 1 without", wall=True
    ),
    Case("sleep_past_wall", "failed", "encode", r"^encoder timed out after 3 s", wall=True),
    Case("ignore_sigterm", "failed", "encode", r"^encoder timed out after 3 s", wall=True),
    Case(
        "fork_flood",
        "failed",
        "encode",
        r"^encoder timed out after 3 s",
        wall=True,
        strong_evidence=r"fork refused after \d+ children",  # RLIMIT_NPROC holds as nobody
    ),
    Case(
        "env_secrets",
        "failed",
        "decode",
        r"decoder raised ValueError: secrets seen: none",
        wall=True,
    ),
    Case(
        "symlink_bitstream",
        "failed",
        "encode",
        r"^encoder left bitstream\.bin as a link or special file",
        wall=True,
    ),
    Case(
        "fifo_bitstream",
        "failed",
        "encode",
        r"^encoder left bitstream\.bin as a link or special file",
        wall=True,
    ),
    Case(
        "symlink_decoded",
        "failed",
        "decode",
        r"^decoder left decoded\.yuv as a link or special file",
        wall=True,
    ),
    Case(
        "parent_environ",
        "failed",
        "encode",
        r"secrets seen: none; environs read: 0$",
        wall=True,
        weak=True,
    ),
    # The wall itself: only namespaces stop these.
    Case("setsid_survivor", "failed", "decode", r"decoder raised RuntimeError", True, True),
    Case("tmp_smuggle", "failed", "decode", r"decoder raised FileNotFoundError", True, True),
    Case("shm_smuggle", "failed", "decode", r"decoder raised FileNotFoundError", True, True),
    Case("home_smuggle", "failed", "decode", r"no stash in any of 4 home-like places", True, True),
    Case("cwd_smuggle", "failed", "decode", r"no stash in any of 3 places near", True, True),
    Case(
        "read_source_clip",
        "failed",
        "decode",
        r"none of the \d+ guessed source paths is readable",
        True,
        True,
    ),
    # walking every visible file (the Python installation's too) can take seconds on a busy
    # machine: what it must show is what it finds, not how fast
    Case(
        "search_for_clips",
        "failed",
        "decode",
        r"found 0 video files",
        True,
        True,
        wall_seconds=20.0,
    ),
    Case(
        "loopback_network",
        "failed",
        "encode",
        r"encoder raised ConnectionRefusedError",
        True,
        True,
    ),
    Case("outside_network", "failed", "encode", r"Network is unreachable", True, True),
    Case(
        "ctypes_shell",
        "failed",
        "encode",
        r"FileNotFoundError: the shell could not read the source clip",
        True,
        True,
    ),
    Case(
        "write_outside",
        "failed",
        "encode",
        r"PermissionError: wrote nowhere outside the work directory",
        True,
        True,
    ),
    Case(
        "user_namespace",
        "failed",
        "encode",
        r"could not create a user namespace",
        True,
        True,
    ),
    Case("kill_everything", "failed", "encode", r"kill -1 found no process to signal", True, True),
    Case("proc_snoop", "failed", "encode", r"other processes visible: 0$", True, True),
    Case("fill_tmpfs", "failed", "encode", r"No space left on device", True, True),
    Case(
        "fill_workdir",
        "failed",
        "encode",
        r"^encoder filled its work directory: the total size cap is 32 MB$",
        True,
        True,
    ),
    Case(
        "site_packages_clip",
        "failed",
        "decode",
        r"found 0 clips and 0 codeclab files",
        True,
        True,
        wall_seconds=20.0,
    ),
    Case(
        "lock_channel",
        "failed",
        "encode",
        r"^encoder raised PermissionError: \[Errno 1\] Operation not permitted",
        True,
        True,
    ),
]


def test_every_program_in_the_corpus_has_a_case_and_a_docstring():
    files = {path.stem for path in ADVERSARIAL.glob("*.py")}
    assert files == {case.program for case in CASES}
    assert len(files) >= 25
    for path in ADVERSARIAL.glob("*.py"):
        assert path.read_text().startswith('"""'), f"{path.name} needs a docstring"


@pytest.fixture(scope="module")
def probe() -> bwrap.Probe:
    return bwrap.probe()


@pytest.fixture()
def listener() -> Iterator[socket.socket]:
    """A TCP server on the host's loopback that no sandboxed program may reach."""
    server = socket.create_server(("127.0.0.1", 0))
    server.setblocking(False)
    yield server
    server.close()


@pytest.fixture()
def workroot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh directory for the sandbox's work directories, named so that it is unique."""
    root = tmp_path / f"{MARKER}-{uuid.uuid4().hex[:8]}"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


@pytest.mark.parametrize("case", CASES, ids=str)
def test_hostile_program_is_contained(
    case: Case,
    probe: bwrap.Probe,
    home: Path,
    small_clip_path: Path,
    sample: Clip,
    listener: socket.socket,
    workroot: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    if case.strong and not probe.strong:
        pytest.skip(f"needs strong isolation: {probe.reason}")
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    source = render(case.program, listener.getsockname()[1], [SAMPLE_CLIP, small_clip_path, home])
    # A process of the sandbox's own uid on the host: what kill -1 would take down if it could.
    as_sandbox_uid = bwrap.SANDBOX_UID if os.geteuid() == 0 else None
    sentinel = subprocess.Popen(["sleep", "60"], user=as_sandbox_uid)
    start = time.monotonic()
    try:
        if case.weak:
            status, phase, reason, detail = weak_lab(source)
        elif case.wall:
            status, phase, reason, detail = wall(source, sample, probe.launcher, case.wall_seconds)
        else:
            record = run_experiment(source, case.program, small_clip_path)
            status, phase, reason, detail = record.status, record.phase, record.error, ""
            assert record.isolation == probe.launcher.isolation
        assert sentinel.poll() is None, "a program killed a process outside its sandbox"
    finally:
        sentinel.kill()
        sentinel.wait()
    assert (status, phase) == (case.status, case.phase), reason
    assert re.search(case.reason, reason or "", re.MULTILINE), reason
    if case.strong_evidence and probe.strong:
        assert re.search(case.strong_evidence, detail), detail
    assert time.monotonic() - start < 20 + case.wall_seconds
    for secret in SECRETS.values():
        assert secret not in reason + detail
    assert leftover_processes(workroot.name, grace=2.0) == []
    assert leftover_files(home) == []
    with pytest.raises(BlockingIOError):
        listener.accept()  # nobody connected


def render(program: str, port: int, guesses: list[Path]) -> str:
    """The program's source with what the test knows filled in (true paths, the port)."""
    source = (ADVERSARIAL / f"{program}.py").read_text()
    paths = [str(p) for p in guesses] + [str(Path.cwd()), str(Path(__file__).parents[1])]
    source = source.replace("GUESSED_PATHS: list[str] = []", f"GUESSED_PATHS = {paths!r}")
    source = source.replace("LAB_PORT = 0", f"LAB_PORT = {port}")
    return source.replace('CODEBOOK = ""', f'CODEBOOK = "{"7" * 300_000}"')


def run_experiment(source: str, name: str, clip_path: Path) -> ExperimentRecord:
    settings = load_settings(clips=[clip_path], **RUNNER_SETTINGS)
    job = Job(
        source=source,
        name=name,
        clips=[load_clip(clip_path)],
        settings=settings,
        store=ExperimentStore(settings.db_url),
        artifacts=LocalArtifactStore(settings.artifacts_dir),
    )
    return evaluate(job)


def wall(
    source: str,
    sample: Clip,
    launcher: isolate.Launcher,
    wall_seconds: float,
    audit: bool = False,
) -> tuple[str, str, str, str]:
    """Encode then decode straight through the sandbox; the outcome as a record would say.

    The child's audit hook is off unless ``audit``: the corpus tests the process wall alone."""
    launcher = dataclasses.replace(launcher, audit=audit)
    frames = [crop(frame) for frame in sample.frames[:2]]
    more = {**WALL_LIMITS, "wall_seconds": wall_seconds, "cpu_seconds": wall_seconds}
    limits = Limits(**(WALL_LIMITS if wall_seconds == WALL_LIMITS["wall_seconds"] else more))
    try:
        encoded = run_encode(source, frames, sample.fps, 50, limits, launcher)
        decoded = run_decode(source, encoded.bitstream, limits, launcher)
    except SandboxError as exc:
        return "failed", exc.phase, exc.reason, exc.detail
    return "ok", "", f"decoded {len(decoded.frames)} frames", ""


# A lab process of its own: /proc/<pid>/environ shows the environment a process started with.
WEAK_LAB = """
import dataclasses, json, sys
import numpy as np
from codeclab.sandbox import isolate
source = sys.stdin.read()
planes = (np.zeros((16, 32), np.uint8), np.zeros((8, 16), np.uint8), np.zeros((8, 16), np.uint8))
launcher = dataclasses.replace(isolate.WEAK, audit=False)
limits = isolate.Limits(cpu_seconds=3, wall_seconds=3.0, memory_mb=1024)
try:
    encoded = isolate.run_encode(source, [planes] * 2, 30.0, 50, limits, launcher)
    isolate.run_decode(source, encoded.bitstream, limits, launcher)
    print(json.dumps(["ok", "", "decoded", ""]))
except isolate.SandboxError as exc:
    print(json.dumps(["failed", exc.phase, exc.reason, exc.detail]))
"""
# The lab as nobody: keeps only CAP_DAC_READ_SEARCH, to reach the interpreter under /root.
AS_NOBODY = [
    "setpriv",
    f"--reuid={isolate.SANDBOX_UID}",
    f"--regid={isolate.SANDBOX_GID}",
    "--clear-groups",
    *(f"--{kind}={'-all,+dac_read_search'}" for kind in ("inh-caps", "ambient-caps")),
    "--",
]


def weak_lab(source: str, prefix: tuple[str, ...] = ()) -> tuple[str, str, str, str]:
    """Run ``source`` under the weak launcher from a fresh lab process holding the secrets."""
    done = subprocess.run(
        [*prefix, sys.executable, "-c", WEAK_LAB],
        input=source,
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/tmp",
        env={**os.environ, **SECRETS},
    )
    assert done.returncode == 0, done.stderr
    status, phase, reason, detail = json.loads(done.stdout)
    return status, phase, reason, detail


def hook_off(probe: bwrap.Probe) -> isolate.Launcher:
    """The probed launcher without the child's audit hook, to test the process wall alone."""
    return dataclasses.replace(probe.launcher, audit=False)


def crop(frame: Frame) -> Frame:
    """A 32x16 window of the sample where the picture has texture."""
    y, u, v = frame
    return y[100:116, 96:128].copy(), u[50:58, 48:64].copy(), v[50:58, 48:64].copy()


def leftover_processes(marker: str, grace: float = 0.0) -> list[str]:
    """Live processes whose work directory, or whose sandbox's mounts, name ``marker``."""
    deadline = time.monotonic() + grace
    while (found := _processes_naming(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def _processes_naming(marker: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] in {"Z", "X"}:
                continue
            cwd = os.readlink(entry / "cwd")
            mounts = (entry / "mountinfo").read_text()
        except (OSError, IndexError):
            continue
        if marker in cwd or marker in mounts:
            found.append(f"{entry.name}: {(entry / 'cmdline').read_bytes()[:80]!r}")
    return found


def leftover_files(home: Path) -> list[str]:
    """Files a hostile program left on the host, found by the marker in their names."""
    places = [
        Path("/tmp"),
        Path("/dev/shm"),
        Path("/var/tmp"),
        Path.home(),
        Path("/"),
        Path("/work"),
        Path(__file__).parents[1],
    ]
    found = [str(p) for place in places for p in place.glob(f"*{MARKER}*") if p.is_file()]
    found += [str(p) for p in Path.cwd().rglob(f"*{MARKER}*") if p.is_file()]
    return found + [str(p) for p in home.rglob(f"*{MARKER}*") if p.is_file()]


# -- what the corpus cannot say on its own ---------------------------------------------------


@pytest.mark.skipif(not os.environ.get("CI"), reason="only CI promises bubblewrap (bootstrap)")
def test_ci_has_strong_isolation(probe: bwrap.Probe):
    """CI runs bootstrap as root on Debian, which installs bubblewrap: no silent fallback."""
    assert probe.strong, probe.reason


def test_a_good_program_is_scored_with_the_isolation_actually_used(
    probe: bwrap.Probe, home: Path, small_clip_path: Path
):
    source = (PROGRAMS / "quantise_zlib.py").read_text()
    record = run_experiment(source, "quantise_zlib", small_clip_path)
    assert record.status == "ok", record.error
    assert record.isolation == ("strong" if probe.strong else "weak")
    assert record.source_bytes == len(source.encode())


def test_strong_isolation_is_required_by_default(
    home: Path, small_clip_path: Path, monkeypatch: pytest.MonkeyPatch
):
    missing = bwrap.Probe(
        isolate.WEAK, f"bubblewrap (bwrap) is not installed; {bwrap.INSTALL_HINT}"
    )
    monkeypatch.setattr(bwrap, "probe", lambda: missing)
    record = run_experiment((PROGRAMS / "quantise_zlib.py").read_text(), "q", small_clip_path)
    assert (record.status, record.phase, record.isolation) == ("failed", "validation", "weak")
    assert re.match(
        r"strong isolation is required but bubblewrap \(bwrap\) is not installed; "
        r"install it as root with 'apt-get install -y bubblewrap'",
        record.error,
    )
    assert [p.name for p in record.phases] == ["design", "validation"]


def test_allowed_weak_isolation_runs_but_does_not_rank(
    home: Path, small_clip_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from codeclab.ranking import leaderboard_entry, ranks
    from codeclab.runner import _combined_target
    from codeclab.store.summary import holdout_bd_rates

    monkeypatch.setattr(bwrap, "probe", lambda: bwrap.Probe(isolate.WEAK, "no bubblewrap"))
    monkeypatch.setenv("CODECLAB_ALLOW_WEAK_ISOLATION", "1")
    settings = dict(RUNNER_SETTINGS, baselines=["x264"], qualities=[30, 60, 90], timeout_s=30)
    monkeypatch.setattr(sys.modules[__name__], "RUNNER_SETTINGS", settings)
    record = run_experiment((PROGRAMS / "quantise_zlib.py").read_text(), "q", small_clip_path)
    assert (record.status, record.isolation) == ("ok", "weak"), record.error
    assert leaderboard_entry(record) is None and holdout_bd_rates(record) == {}
    assert record.target is None or not record.target.achieved
    assert not ranks(record) and ranks(record.model_copy(update={"isolation": "strong"}))
    met = {"clip": {"achieved": True, "target_kbps": 1000.0, "kbps": 500.0}}
    assert _combined_target(met, "strong").achieved
    weak = _combined_target(met, "weak")
    assert not weak.achieved and weak.reason.startswith("run under weak isolation")


def test_cli_refuses_to_run_programs_without_strong_isolation(tmp_path: Path):
    """Without bubblewrap on the PATH: exit 2 and one line naming how to get it."""
    program = PROGRAMS / "quantise_zlib.py"
    env = {**os.environ, "PATH": str(tmp_path), "CODECLAB_HOME": str(tmp_path / "data")}
    for command in (["evaluate", str(program)], ["run", "--iterations", "1"]):
        done = subprocess.run(
            [sys.executable, "-m", "codeclab", *command],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
        )
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert "".join(lines).startswith("error: strong isolation is required"), lines
        assert "apt-get install -y bubblewrap" in done.stderr
        assert "--allow-weak-isolation" in done.stderr


def test_a_weak_child_cannot_read_a_lab_of_its_own_uid():
    """Not root: the lab makes itself non-dumpable, so /proc/<lab>/environ is closed to it."""
    source = (ADVERSARIAL / "parent_environ.py").read_text()
    prefix = tuple(AS_NOBODY) if os.geteuid() == 0 else ()
    status, phase, reason, _ = weak_lab(source, prefix)
    assert (status, phase) == ("failed", "encode")
    assert reason.endswith("secrets seen: none; environs read: 0"), reason


HOOK_CASES = [
    ("write_outside", r"en", r"writing '.*/codeclab-adversary-outside' is not allowed"),
    ("fork_flood", r"en", r"os\.fork is not allowed"),
    ("loopback_network", r"en", r"import of 'socket' is not allowed"),
    ("ctypes_shell", r"en", r"import of 'ctypes\.util' is not allowed"),
    ("read_source_clip", r"de", r"reading '.*' is not allowed: outside the work directory"),
    ("singledispatch_annotation", r"en", r"writing '/tmp/codeclab-adversary-singledispatch"),
    ("sparse_npz_stash", r"en", r"writing '/tmp/codeclab-adversary-stash\.npz' is not allowed"),
]


@pytest.mark.parametrize(("program", "side", "reason"), HOOK_CASES, ids=[c[0] for c in HOOK_CASES])
def test_the_audit_hook_refuses_what_the_policy_missed(
    program: str,
    side: str,
    reason: str,
    probe: bwrap.Probe,
    sample: Clip,
    home: Path,
    workroot: Path,
):
    """The second layer, with the policy bypassed: the child's audit hook, under any launcher.
    The first refusal ends the child, even where the program catches what it raised."""
    source = render(program, 9, [SAMPLE_CLIP, home])
    status, phase, said, _ = wall(source, sample, probe.launcher, 3.0, audit=True)
    assert (status, phase) == ("failed", f"{side}code"), said
    assert re.match(rf"{side}coder was refused by the sandbox: {reason}", said), said
    assert leftover_files(home) == []


@pytest.mark.parametrize(
    ("which", "expected"),
    [
        (lambda name: None, r"^bubblewrap \(bwrap\) is not installed; install it"),
        (
            lambda name: "/bin/false" if name == "bwrap" else f"/usr/bin/{name}",
            r"^bubblewrap is installed but not usable here",
        ),
    ],
    ids=["missing", "unusable"],
)
def test_probe_falls_back_to_weak_isolation(which, expected, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(bwrap.shutil, "which", which)
    bwrap.probe.cache_clear()
    try:
        found = bwrap.probe()
    finally:
        monkeypatch.undo()
        bwrap.probe.cache_clear()
    assert found.launcher is isolate.WEAK and not found.strong
    assert re.match(expected, found.reason), found.reason


def test_the_sandbox_sees_only_the_system_the_interpreter_and_its_work_dir(
    probe: bwrap.Probe, sample: Clip, workroot: Path
):
    if not probe.strong:
        pytest.skip(f"needs strong isolation: {probe.reason}")
    source = (
        "import os, sys\n"
        "def encode(frames, fps, quality):\n"
        "    seen = dict(uid=os.getuid(), cwd=os.getcwd(), top=sorted(os.listdir('/')),\n"
        "                tmp=os.listdir('/tmp'), shm=os.listdir('/dev/shm'),\n"
        "                caps=[l for l in open('/proc/self/status') if l.startswith('Cap')],\n"
        "                host=os.uname().nodename, env=sorted(os.environ))\n"
        "    return repr(seen).encode()\n"
        "def decode(bitstream):\n"
        "    return []\n"
    )
    frames = [crop(frame) for frame in sample.frames[:1]]
    seen = eval(run_encode(source, frames, 30.0, 50, Limits(), hook_off(probe)).bitstream)
    assert seen["uid"] == (bwrap.SANDBOX_UID if os.geteuid() == 0 else os.geteuid()) != 0
    assert seen["cwd"] == bwrap.WORKDIR
    assert seen["tmp"] == seen["shm"] == []
    assert all(line.split()[1] == "0000000000000000" for line in seen["caps"])
    assert seen["host"] == "sandbox"
    assert set(seen["top"]) <= {"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc"} | {
        "proc",
        "dev",
        "tmp",
        "sandbox",
        *(Path(dest).parts[1] for _, dest in bwrap.Layout.of_this_interpreter().binds),
    }
    extra = {"PWD", "LC_CTYPE", "PYTHONPATH"}
    assert set(seen["env"]) <= set(isolate.scrubbed_env(Path("/"))) | extra


def test_a_killed_sandbox_leaves_no_process_at_once(probe: bwrap.Probe, sample: Clip, workroot):
    """The wall-clock kill returns only when every process of the sandbox is gone."""
    source = (
        (ADVERSARIAL / "setsid_survivor.py")
        .read_text()
        .replace("    os.wait()\n    return", "    os.wait()\n    time.sleep(600)\n    return")
    )
    frames = [crop(frame) for frame in sample.frames[:1]]
    with pytest.raises(SandboxError, match="timed out"):
        run_encode(source, frames, 30.0, 50, Limits(wall_seconds=1.5), hook_off(probe))
    leftovers = leftover_processes(workroot.name)
    if not probe.strong:
        # Weak isolation: the setsid()'d grandchild escapes the process-group kill.
        for line in leftovers:
            os.kill(int(line.split(":")[0]), signal.SIGKILL)
        pytest.skip(f"weak isolation leaves a setsid()'d grandchild: {probe.reason}")
    assert leftovers == []


@pytest.mark.parametrize(
    ("body", "limits", "reason"),
    [
        (
            "signal.signal(signal.SIGXCPU, signal.SIG_IGN)\n    while True:\n        pass",
            Limits(cpu_seconds=1, wall_seconds=10),
            "encoder exceeded CPU limit of 1 s",
        ),
        (
            "return bytes(3 << 20)",
            Limits(file_size_mb=1),
            "encoder exceeded the file size limit of 1 MB",
        ),
        (
            "return bytes(2 << 20)",
            Limits(max_bitstream_bytes=1 << 20),
            "bitstream is 2.0 MB, over the cap of 1.0 MB",
        ),
    ],
    ids=["cpu", "file_size", "bitstream_cap"],
)
def test_limits_are_named_the_same_under_bubblewrap(
    body: str, limits: Limits, reason: str, probe: bwrap.Probe, sample: Clip
):
    """The child's CPU time and signals reach the lab through both bubblewrap stages."""
    if not probe.strong:
        pytest.skip(f"needs strong isolation: {probe.reason}")
    source = (
        f"import signal\ndef encode(frames, fps, quality):\n    {body}\n"
        "def decode(b):\n    return []\n"
    )
    frames = [crop(frame) for frame in sample.frames[:1]]
    with pytest.raises(SandboxError) as caught:
        run_encode(source, frames, 30.0, 50, limits, hook_off(probe))
    assert caught.value.reason == reason


def test_exit_status_of_a_wrapper_is_read_back_as_the_signal():
    launcher = isolate.Launcher(signal_status_base=128)
    assert launcher.exit_code(128 + signal.SIGXCPU) == -signal.SIGXCPU
    assert launcher.exit_code(1) == 1
    assert isolate.WEAK.exit_code(137) == 137


WITHOUT_RESULT = r"^encoder exited with status 1 without a result$"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("[1, 2, 3]", WITHOUT_RESULT),
        ('{"kind": ["raised"]}', WITHOUT_RESULT),
        ('{"kind": "too_big", "size": 1e400}', WITHOUT_RESULT),
        ('{"kind": "too_big", "size": true}', WITHOUT_RESULT),
        ('{"kind": "too_big", "size": -5}', WITHOUT_RESULT),
        ('{"kind": "raised", "type": {"nested": [1]}, "message": "m"}', WITHOUT_RESULT),
        ('{"kind": "contract", "message": ' + "[" * 900 + "]" * 900 + "}", WITHOUT_RESULT),
        (
            '{"kind": "raised", "type": "E", "message": "' + "x" * 60000 + '"}',
            r"^encoder raised E: x{300} \.\.\.$",
        ),
        ('{"kind": "memory", "traceback": "' + "y" * 60000 + '"}', r"^encoder ran out of memory"),
    ],
    ids=[
        "list",
        "kind_list",
        "size_inf",
        "size_bool",
        "size_negative",
        "type_dict",
        "nested",
        "long_message",
        "long_traceback",
    ],
)
def test_a_forged_error_record_is_worded_or_ignored(
    payload: str, reason: str, probe: bwrap.Probe, sample: Clip, workroot: Path
):
    """Whatever a program leaves in error.json, the lab words one short line or falls back
    to the exit status; it never raises anything but SandboxError."""
    source = (
        "import os\ndef encode(frames, fps, quality):\n"
        f"    open('error.json', 'w').write({payload!r})\n    os._exit(1)\n"
        "def decode(b):\n    return []\n"
    )
    frames = [crop(frame) for frame in sample.frames[:1]]
    with pytest.raises(SandboxError) as caught:
        run_encode(source, frames, 30.0, 50, Limits(), probe.launcher)
    assert re.search(reason, caught.value.reason), caught.value.reason
    assert len(caught.value.detail) <= 2 * 4000


# -- what the sandbox shows and shares (issue 15, part 4) -------------------------------------


def test_two_sandboxes_at_once_move_no_bytes_through_record_locks(
    probe: bwrap.Probe, sample: Clip, workroot: Path
):
    """The sender's 512 luma bytes reach a receiver in another sandbox under the weak launcher
    (the channel works), and nothing reaches it under bubblewrap's seccomp filter."""
    if not probe.strong:
        pytest.skip(f"needs strong isolation: {probe.reason}")
    source = (ADVERSARIAL / "lock_channel.py").read_text()
    frames = [crop(frame) for frame in sample.frames[:1]]
    secret = frames[0][0].tobytes()
    assert len(secret) == 512
    blank = [tuple(np.zeros_like(plane) for plane in frames[0])]
    for launcher, arrives in ((isolate.WEAK, True), (probe.launcher, False)):
        launcher = dataclasses.replace(launcher, audit=False)
        with ThreadPoolExecutor(2) as pool:
            sent = pool.submit(_encode_or_reason, source, frames, 50, launcher)
            received = pool.submit(_encode_or_reason, source, blank, 0, launcher)
        assert (received.result() == secret) is arrives, launcher.isolation
        if not arrives:
            for outcome in (sent.result(), received.result()):
                assert "encoder raised PermissionError" in str(outcome)


def _encode_or_reason(
    source: str, frames: list[Frame], quality: int, launcher: isolate.Launcher
) -> bytes | str:
    limits = Limits(cpu_seconds=20, wall_seconds=20.0)
    try:
        return run_encode(source, frames, 30.0, quality, limits, launcher).bitstream
    except SandboxError as exc:
        return exc.reason


WHEEL_LAB = """
import codeclab, dataclasses, json, sys
from pathlib import Path
import numpy as np
from codeclab.sandbox import bwrap, isolate
launcher = dataclasses.replace(bwrap.best_launcher(), audit=False)
planes = (np.zeros((16, 32), np.uint8), np.zeros((8, 16), np.uint8), np.zeros((8, 16), np.uint8))
limits = isolate.Limits(cpu_seconds=20, wall_seconds=20.0)
source = sys.stdin.read()
try:
    encoded = isolate.run_encode(source, [planes], 30.0, 50, limits, launcher)
    isolate.run_decode(source, encoded.bitstream, limits, launcher)
    reason = "decoded"
except isolate.SandboxError as exc:
    reason = exc.reason
clips = sorted(str(p) for p in Path(codeclab.__file__).parent.rglob("*.y4m"))
print(json.dumps([launcher.isolation, codeclab.__file__, clips, reason]))
"""


def test_a_wheel_install_shows_the_sandbox_neither_codeclab_nor_its_sample_clip(
    probe: bwrap.Probe, tmp_path: Path
):
    """Installed as a wheel (not editable), codeclab and its sample clip sit in site-packages;
    a program that walks every library directory it can see finds neither."""
    if not probe.strong:
        pytest.skip(f"needs strong isolation: {probe.reason}")
    wheel = build_wheel(Path(__file__).parents[1] / "src" / "codeclab", tmp_path)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
    offline = ["--no-deps", "--no-index"]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([*pip, "--python", str(python), "install", *offline, str(wheel)], check=True)
    # The libraries come from the project's environment, after the wheel's site-packages.
    site_dir = Path(subprocess.check_output([python, "-c", PURELIB], text=True).strip())
    (site_dir / "project-libraries.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    source = (ADVERSARIAL / "site_packages_clip.py").read_text()
    done = subprocess.run(
        [python, "-c", WHEEL_LAB], input=source, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    isolation, package, clips, reason = json.loads(done.stdout)
    assert isolation == "strong"
    assert Path(package).is_relative_to(site_dir) and clips, "codeclab is not the wheel's"
    assert re.search(r"found 0 clips and 0 codeclab files", reason), reason


PURELIB = "import sysconfig; print(sysconfig.get_paths()['purelib'])"


def build_wheel(package: Path, out: Path) -> Path:
    """A pure wheel of the package as it is, data included, built offline.

    (``pip wheel`` needs a setuptools that reads this pyproject's license field, which an
    offline test cannot fetch; what matters here is where pip installs the files.)
    """
    name = "codeclab-0.0.0"
    files = {
        f"codeclab/{path.relative_to(package)}": path.read_bytes()
        for path in sorted(package.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }
    files[f"{name}.dist-info/METADATA"] = b"Metadata-Version: 2.1\nName: codeclab\nVersion: 0.0.0\n"
    files[f"{name}.dist-info/WHEEL"] = (
        b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = "".join(f"{path},,\n" for path in [*files, f"{name}.dist-info/RECORD"])
    files[f"{name}.dist-info/RECORD"] = record.encode()
    wheel = out / f"{name}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return wheel
