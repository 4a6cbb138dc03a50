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

import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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
        r"decoder is not deterministic: two decodes of the same bitstream differ at frame 0",
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
    # Straight through the sandbox: limits and the lab's own reading of results.
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
        if case.wall:
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
    source: str, sample: Clip, launcher: isolate.Launcher, wall_seconds: float
) -> tuple[str, str, str, str]:
    """Encode then decode straight through the sandbox; the outcome as a record would say."""
    frames = [crop(frame) for frame in sample.frames[:2]]
    more = {**WALL_LIMITS, "wall_seconds": wall_seconds, "cpu_seconds": wall_seconds}
    limits = Limits(**(WALL_LIMITS if wall_seconds == WALL_LIMITS["wall_seconds"] else more))
    try:
        encoded = run_encode(source, frames, sample.fps, 50, limits, launcher)
        decoded = run_decode(source, encoded.bitstream, limits, launcher)
    except SandboxError as exc:
        return "failed", exc.phase, exc.reason, exc.detail
    return "ok", "", f"decoded {len(decoded.frames)} frames", ""


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


def test_required_strong_isolation_refuses_without_bubblewrap(
    home: Path, small_clip_path: Path, monkeypatch: pytest.MonkeyPatch
):
    missing = bwrap.Probe(
        isolate.WEAK, f"bubblewrap (bwrap) is not installed; {bwrap.INSTALL_HINT}"
    )
    monkeypatch.setattr(bwrap, "probe", lambda: missing)
    monkeypatch.setenv("CODECLAB_REQUIRE_STRONG_ISOLATION", "1")
    record = run_experiment((PROGRAMS / "quantise_zlib.py").read_text(), "q", small_clip_path)
    assert (record.status, record.phase, record.isolation) == ("failed", "validation", "weak")
    assert re.match(
        r"strong isolation is required .* but bubblewrap \(bwrap\) is not installed; "
        r"install it as root with 'apt-get install -y bubblewrap'",
        record.error,
    )
    assert [p.name for p in record.phases] == ["design", "validation"]


def test_required_strong_isolation_runs_when_bubblewrap_works(
    probe: bwrap.Probe, home: Path, small_clip_path: Path, monkeypatch: pytest.MonkeyPatch
):
    if not probe.strong:
        pytest.skip(f"needs strong isolation: {probe.reason}")
    monkeypatch.setenv("CODECLAB_REQUIRE_STRONG_ISOLATION", "true")
    record = run_experiment((PROGRAMS / "quantise_zlib.py").read_text(), "q", small_clip_path)
    assert (record.status, record.isolation) == ("ok", "strong"), record.error


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
    seen = eval(run_encode(source, frames, 30.0, 50, Limits(), probe.launcher).bitstream)
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
        run_encode(source, frames, 30.0, 50, Limits(wall_seconds=1.5), probe.launcher)
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
        run_encode(source, frames, 30.0, 50, limits, probe.launcher)
    assert caught.value.reason == reason


def test_exit_status_of_a_wrapper_is_read_back_as_the_signal():
    launcher = isolate.Launcher(signal_status_base=128)
    assert launcher.exit_code(128 + signal.SIGXCPU) == -signal.SIGXCPU
    assert launcher.exit_code(1) == 1
    assert isolate.WEAK.exit_code(137) == 137
