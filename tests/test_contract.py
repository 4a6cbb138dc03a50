"""The contract check finds the functions the lab calls, in either style, with usable arities."""

from __future__ import annotations

import ast

import pytest

from codeclab.contract import ContractError, check_contract, detect_style, is_import_allowed


def tree(source: str) -> ast.Module:
    return ast.parse(source)


DECODE = "\n\ndef decode(b):\n    pass\n"
NATIVE = "def encode(frames, fps, quality):\n    pass\n\ndef decode(bitstream):\n    pass\n"
SEED = (
    "def compress_video_frame(frame, frame_index, config):\n    pass\n\n"
    "def decompress_video_frame(compressed_data, frame_index, config):\n    pass\n"
)


def test_native_and_seed_styles_are_detected():
    assert detect_style(tree(NATIVE)) == "native"
    assert detect_style(tree(SEED)) == "seed"
    assert detect_style(tree(NATIVE + SEED)) == "native"
    assert check_contract(tree(NATIVE)) == check_contract(tree(SEED)) == []


def test_missing_functions_are_named_with_the_call_the_lab_makes():
    with pytest.raises(ContractError) as caught:
        detect_style(tree("x = 1\n"))
    assert caught.value.problems == [
        "missing top-level function: def encode(frames, fps, quality)",
        "missing top-level function: def decode(bitstream)",
    ]


def test_a_half_seed_program_gets_seed_problems():
    source = "def compress_video_frame(frame, frame_index, config):\n    pass\n"
    assert check_contract(tree(source)) == [
        "missing top-level function: "
        "def decompress_video_frame(compressed_data, frame_index, config)"
    ]


def test_wrong_arity_gives_line_and_expected_call():
    source = (
        "import zlib\n\ndef encode(frames, fps):\n    pass\n\ndef decode(bitstream):\n    pass\n"
    )
    assert check_contract(tree(source)) == [
        "line 3: encode cannot be called with 3 positional arguments; "
        "the lab calls encode(frames, fps, quality)"
    ]


@pytest.mark.parametrize(
    "signature",
    ["frames, fps, quality=50", "frames, fps, quality, extra=None", "*args", "frames, /, *rest"],
)
def test_arities_that_accept_the_call_pass(signature):
    source = (
        f"def encode({signature}):\n    pass\n\ndef decode(bitstream, *, strict=True):\n    pass\n"
    )
    assert check_contract(tree(source)) == []


@pytest.mark.parametrize(
    "source",
    [
        "def encode(frames, fps, quality, *, mode):\n    pass" + DECODE,
        "async def encode(frames, fps, quality):\n    pass" + DECODE,
        "if True:\n    def encode(frames, fps, quality):\n        pass" + DECODE,
    ],
)
def test_uncallable_async_or_nested_encode_is_refused(source):
    problems = check_contract(tree(source))
    assert len(problems) == 1 and "encode" in problems[0]


@pytest.mark.parametrize(
    ("module", "allowed"),
    [
        ("numpy", True),
        ("numpy.fft", True),
        ("scipy.fft", True),
        ("constriction.stream.model", True),
        ("__future__", True),
        ("numpy.ctypeslib", False),
        ("numpy.f2py.crackfortran", False),
        ("numpy._core", False),
        ("scipy.io", False),
        ("os", False),
        ("pickle", False),
        ("torch", False),
    ],
)
def test_import_allow_list(module, allowed):
    assert is_import_allowed(module) is allowed


def test_torch_needs_the_flag():
    assert is_import_allowed("torch.nn", allow_torch=True)
    assert not is_import_allowed("torch.hub", allow_torch=True)
