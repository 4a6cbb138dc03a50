"""Code out of an LLM's reply: a whole program in a fenced block, or SEARCH/REPLACE edits.

Edits use aider's format, which models know well::

    <<<<<<< SEARCH
    old lines
    =======
    new lines
    >>>>>>> REPLACE

Each SEARCH text must match whole lines of the program exactly once (trailing whitespace
aside), so an edit never lands somewhere the model did not mean. Blocks apply in order, each
to the result of the ones before.
"""

from __future__ import annotations

import re

_SEARCH = re.compile(r"^<{5,9} ?SEARCH\s*$")
_DIVIDER = re.compile(r"^={5,9}\s*$")
_REPLACE = re.compile(r"^>{5,9} ?REPLACE\s*$")
_FENCE = re.compile(r"^(?P<fence>`{3,})[ \t]*(?P<lang>[\w+.-]*)[^\n`]*$")
_PYTHON_TAGS = frozenset({"", "python", "python3", "py"})
_CONTRACT_DEF = re.compile(r"^def (?:encode|compress_video_frame)\s*\(", re.MULTILINE)


class EditError(ValueError):
    """The reply's code could not be used; the message says which block and why."""


def _lines(text: str) -> list[str]:
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def has_edits(reply_text: str) -> bool:
    return any(_SEARCH.match(line) for line in _lines(reply_text))


def parse_edits(reply_text: str) -> list[tuple[list[str], list[str]]]:
    """The (search lines, replace lines) pairs of ``reply_text``, in order."""
    edits = []
    lines = _lines(reply_text)
    i = 0
    while i < len(lines):
        if not _SEARCH.match(lines[i]):
            i += 1
            continue
        number = len(edits) + 1
        search: list[str] = []
        replace: list[str] = []
        i += 1
        while i < len(lines) and not _DIVIDER.match(lines[i]):
            if _SEARCH.match(lines[i]) or _REPLACE.match(lines[i]):
                raise EditError(f"SEARCH/REPLACE block {number}: no '=======' line after SEARCH")
            search.append(lines[i])
            i += 1
        if i == len(lines):
            raise EditError(f"SEARCH/REPLACE block {number}: no '=======' line after SEARCH")
        i += 1
        while i < len(lines) and not _REPLACE.match(lines[i]):
            if _SEARCH.match(lines[i]) or _DIVIDER.match(lines[i]):
                raise EditError(
                    f"SEARCH/REPLACE block {number}: no '>>>>>>> REPLACE' line to close it"
                )
            replace.append(lines[i])
            i += 1
        if i == len(lines):
            raise EditError(f"SEARCH/REPLACE block {number}: no '>>>>>>> REPLACE' line to close it")
        i += 1
        edits.append((search, replace))
    return edits


def _describe(number: int, search: list[str]) -> str:
    first = next((line.strip() for line in search if line.strip()), "")
    return f"SEARCH/REPLACE block {number} (SEARCH starting {first[:80]!r})"


def apply_edits(parent_source: str, reply_text: str) -> str:
    """``parent_source`` with every SEARCH/REPLACE block of ``reply_text`` applied in order.

    Raises :class:`EditError` naming the block when a SEARCH text is empty, matches nothing,
    or matches more than one place.
    """
    edits = parse_edits(reply_text)
    if not edits:
        raise EditError("the reply has no SEARCH/REPLACE blocks")
    program = _lines(parent_source)
    for number, (search, replace) in enumerate(edits, start=1):
        if not any(line.strip() for line in search):
            raise EditError(
                f"SEARCH/REPLACE block {number}: the SEARCH part is empty; quote the lines to "
                "replace, or send the whole program in a ```python block"
            )
        wanted = [line.rstrip() for line in search]
        have = [line.rstrip() for line in program]
        n = len(wanted)
        places = [i for i in range(len(have) - n + 1) if have[i : i + n] == wanted]
        if not places:
            raise EditError(
                f"{_describe(number, search)}: the SEARCH text matches nothing in the program; "
                "copy the lines exactly, indentation included"
            )
        if len(places) > 1:
            lines = ", ".join(str(p + 1) for p in places[:10])
            raise EditError(
                f"{_describe(number, search)}: the SEARCH text matches {len(places)} places "
                f"(lines {lines}); add surrounding lines to make it unique"
            )
        start = places[0]
        program[start : start + n] = replace
    return "\n".join(program)


def fenced_blocks(reply_text: str) -> list[tuple[str, str]]:
    """The (language tag, text) of each closed fenced block, in order."""
    blocks = []
    lines = _lines(reply_text)
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i].strip())
        if not opening:
            i += 1
            continue
        fence = opening["fence"]
        for j in range(i + 1, len(lines)):
            if lines[j].strip() == fence:
                blocks.append((opening["lang"].lower(), "\n".join(lines[i + 1 : j]) + "\n"))
                i = j + 1
                break
        else:
            break  # unclosed: the reply was cut off
    return blocks


def extract_program(reply_text: str) -> str | None:
    """The program in ``reply_text``: of its fenced python blocks (that are not edits), the
    largest one that defines ``encode`` (or the seed's ``compress_video_frame``), else the
    largest; the last one on a tie. ``None`` when there is none."""
    blocks = [
        text
        for lang, text in fenced_blocks(reply_text)
        if lang in _PYTHON_TAGS and text.strip() and not has_edits(text)
    ]
    if not blocks:
        return None
    ranked = sorted(
        enumerate(blocks), key=lambda b: (bool(_CONTRACT_DEF.search(b[1])), len(b[1]), b[0])
    )
    return ranked[-1][1]


def program_from_reply(base_source: str, reply_text: str) -> str:
    """The new program a reply proposes: a whole program when it gives one that defines the
    codec's entry points, else its SEARCH/REPLACE edits applied to ``base_source``, else
    whatever python block it has. Raises :class:`EditError` when it has no code at all."""
    program = extract_program(reply_text)
    if program is not None and _CONTRACT_DEF.search(program):
        return program
    if has_edits(reply_text):
        return apply_edits(base_source, reply_text)
    if program is not None:
        return program
    hint = " (its ``` block is unclosed or not python)" if "```" in reply_text else ""
    raise EditError(
        "the reply has no ```python block and no SEARCH/REPLACE edits" + hint + "; send the "
        "whole program in one ```python block or edits in the SEARCH/REPLACE format"
    )
