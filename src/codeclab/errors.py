"""Errors as the lab prints them: one line that keeps its end.

A driver's reason often has several lines (psycopg: the failure, then "Is the server
running ...?"); printing only the first hides what follows, such as where a finished
experiment was kept. The lines are joined instead, nothing cut.
"""

from __future__ import annotations

SEPARATOR = " — "


def one_line(error: BaseException | str) -> str:
    """``error``'s text on one line: its non-blank lines, stripped, joined with " — ".

    An exception without text gives its type's name.
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines and isinstance(error, BaseException):
        return type(error).__name__
    return SEPARATOR.join(lines)
