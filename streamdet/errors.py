"""Errors a user can act on. The CLI prints them as one line and exits non-zero."""

from __future__ import annotations


class UserFacingError(Exception):
    """An error caused by input the user gave (a file, an option, an endpoint), with the reason."""


class FileFormatError(UserFacingError):
    """A file that cannot be read: names the file and says why."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
