"""Errors lawfit raises for bad input.

Every problem with a user's input is a :class:`DataError` whose message names the problem and
the fix in one line; the command line turns it into exit status 2.
"""
from __future__ import annotations

__all__ = ["DataError"]


class DataError(ValueError):
    """Bad input: the message says what is wrong and how to fix it."""
