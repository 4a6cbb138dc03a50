from __future__ import annotations

import pytest

from codeclab.design.edits import (
    EditError,
    apply_edits,
    extract_program,
    parse_edits,
    program_from_reply,
)

PARENT = """import numpy as np

STEP = 8  # @param int 2..32


def quantise(x):
    return np.round(x / STEP)


def encode(frames, fps, quality):
    return bytes([STEP])


def decode(bitstream):
    return []
"""


def edit(search: str, replace: str) -> str:
    return f"<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE\n"


def test_one_edit_replaces_exactly_those_lines():
    reply = "NEXT STEP: a finer step\n\n" + edit(
        "STEP = 8  # @param int 2..32", "STEP = 4  # @param int 2..32"
    )
    child = apply_edits(PARENT, reply)
    assert child == PARENT.replace("STEP = 8", "STEP = 4")


def test_edits_apply_in_order_each_to_the_result_of_the_ones_before():
    reply = (
        "```python\n"
        + edit("def quantise(x):\n    return np.round(x / STEP)", "def quantise(x):\n    return x")
        + "```\n\nand then\n\n"
        + edit("    return x", "    return np.floor(x / STEP + 0.5)")
    )
    child = apply_edits(PARENT, reply)
    assert "    return np.floor(x / STEP + 0.5)" in child
    assert "np.round" not in child
    assert child.endswith("return []\n")


def test_trailing_whitespace_does_not_matter():
    parent = PARENT.replace("def quantise(x):", "def quantise(x):   ")
    reply = edit(
        "def quantise(x):\n    return np.round(x / STEP)  ", "def quantise(x):\n    return x"
    )
    assert "    return x\n" in apply_edits(parent, reply)
    crlf = reply.replace("\n", "\r\n")
    assert "    return x\n" in apply_edits(parent, crlf)


def test_indentation_does_matter():
    reply = edit("return np.round(x / STEP)", "return x")
    with pytest.raises(
        EditError, match=r"block 1 .*'return np.round\(x / STEP\)'.*matches nothing"
    ):
        apply_edits(PARENT, reply)


def test_a_block_that_matches_nothing_is_named():
    reply = edit("STEP = 8  # @param int 2..32", "STEP = 9") + edit("    return 42", "    return 0")
    with pytest.raises(
        EditError, match=r"block 2 \(SEARCH starting 'return 42'\).*matches nothing"
    ):
        apply_edits(PARENT, reply)


def test_a_block_that_matches_twice_is_refused():
    reply = edit("    return []", "    return [1]")
    parent = PARENT + "\n\ndef other():\n    return []\n"
    with pytest.raises(EditError, match=r"block 1 .* matches 2 places \(lines 15, 19\)"):
        apply_edits(parent, reply)


def test_malformed_blocks_are_refused():
    with pytest.raises(EditError, match="no '=======' line"):
        parse_edits("<<<<<<< SEARCH\nx = 1\n")
    with pytest.raises(EditError, match="no '>>>>>>> REPLACE'"):
        parse_edits("<<<<<<< SEARCH\nx = 1\n=======\nx = 2\n")
    with pytest.raises(EditError, match="SEARCH part is empty"):
        apply_edits(PARENT, edit("", "x = 1"))
    with pytest.raises(EditError, match="no SEARCH/REPLACE blocks"):
        apply_edits(PARENT, "nothing here")


def test_extract_program_takes_the_block_that_defines_the_codec():
    reply = (
        "Here is a helper:\n```python\ndef helper():\n    return 1\n```\n"
        f"And the program:\n```python\n{PARENT}```\n"
        "Usage:\n```python\nencode(frames, 30.0, 50)\n```\n"
        "```text\nnot code\n```\n"
    )
    assert extract_program(reply) == PARENT


def test_extract_program_takes_the_last_of_equals_and_ignores_other_languages():
    first = PARENT.replace("STEP = 8", "STEP = 7")
    second = PARENT.replace("STEP = 8", "STEP = 9")
    assert extract_program(f"```python\n{first}```\n```py\n{second}```") == second
    assert extract_program(f"```bash\n{PARENT}```") is None
    assert extract_program("no code at all") is None
    assert extract_program(f"```python\n{PARENT}") is None  # never closed: cut off


def test_a_whole_program_is_always_understood():
    untagged = f"HYPOTHESIS: x\n```\n{PARENT}```"
    assert program_from_reply("ignored", untagged) == PARENT
    # even when the text around it talks about the edit format
    chatty = f"I could use <<<<<<< SEARCH blocks, but here is all of it:\n```python\n{PARENT}```"
    assert program_from_reply("ignored", chatty) == PARENT


def test_program_from_reply_applies_edits_to_the_base():
    reply = "```python\n" + edit("STEP = 8  # @param int 2..32", "STEP = 5  # @param int 2..32")
    reply += "```\n"
    assert program_from_reply(PARENT, reply) == PARENT.replace("STEP = 8", "STEP = 5")


def test_program_from_reply_without_code_says_what_is_expected():
    with pytest.raises(EditError, match=r"no ```python block and no SEARCH/REPLACE edits"):
        program_from_reply(PARENT, "HYPOTHESIS: something\nI would change the quantiser.")
    with pytest.raises(EditError, match="unclosed or not python"):
        program_from_reply(PARENT, f"```python\n{PARENT}")
