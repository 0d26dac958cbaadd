"""User-facing errors.

Anything that a user can cause with bad input (a missing file, a corrupt manifest line)
raises `AsrError` with a one-line message naming the file and, where there is one, the
line. The command line prints that message and exits non-zero, without a traceback.
"""


class AsrError(Exception):
    """An error caused by input the user gave; its message is shown as it is."""


class AudioError(AsrError):
    """A file that cannot be read as usable audio."""


class ManifestError(AsrError):
    """A manifest that is missing, unreadable or holds an invalid record."""


def first_line(e: BaseException) -> str:
    """An exception's message cut to its first line (its type name if it has none)."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
