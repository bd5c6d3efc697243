"""Errors lawfit raises for bad input.

Every problem with a user's input is a :class:`DataError` whose message names the problem and
the fix in one line; the command line turns it into exit status 2. Messages of the library name
its options as a Python caller writes them (``where="loss > 0"``, ``starts``); the option an
error is about, when there is one, is in :attr:`DataError.option`, for a front end (the command
line) to name its own flag.
"""
from __future__ import annotations

__all__ = ["DataError"]


class DataError(ValueError):
    """Bad input: the message says what is wrong and how to fix it.

    Parameters
    ----------
    message : str
        One line: the problem and the fix.
    option : str, optional
        The library option (keyword argument) whose value is wrong, e.g. ``"starts"``.
    """

    def __init__(self, message: str = "", *, option: str | None = None):
        super().__init__(message)
        self.option = option
