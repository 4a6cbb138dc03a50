"""A program's text for people: highlighted by Pygments, and its change from its parent.

Pygments escapes every character of the text it highlights, so a program (or a diff) that
holds markup is shown as text, never run: only its output is marked safe. Programs are
stored by content hash and never change, so their highlighted forms are kept (highlighting
a large program costs tens of milliseconds, more than the rest of its page).
"""

from __future__ import annotations

import difflib
import functools

from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import DiffLexer, PythonLexer

FORMATTER = HtmlFormatter(nowrap=True)


def highlighted(text: str, lexer: Lexer) -> Markup:
    """``text`` as escaped HTML spans (to go inside ``<pre>``), coloured by ``style.css``."""
    return Markup(highlight(text, lexer, FORMATTER))


@functools.lru_cache(maxsize=64)
def program_html(source: str) -> Markup:
    return highlighted(source, PythonLexer())


@functools.lru_cache(maxsize=64)
def change_html(parent: str, source: str, parent_sha256: str, program_sha256: str) -> Markup:
    """The highlighted diff from the parent ("" when they are the same)."""
    diff = unified_diff(parent, source, parent_sha256, program_sha256)
    return highlighted(diff, DiffLexer()) if diff else Markup("")


def unified_diff(parent: str, source: str, parent_sha256: str, program_sha256: str) -> str:
    """The unified diff from the parent program to this one ("" when they are the same)."""
    return "".join(
        difflib.unified_diff(
            parent.splitlines(keepends=True),
            source.splitlines(keepends=True),
            fromfile=f"parent {parent_sha256[:12]}",
            tofile=f"this program {program_sha256[:12]}",
        )
    )
