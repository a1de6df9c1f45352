"""The one exception type for problems a user can fix.

A `UserError` carries a single line that names the file or argument, says what was wrong
(echoing what was received) and what to do. The CLI prints it as `error: <line>` and exits
with status 2; it never shows a traceback for it.
"""


class UserError(Exception):
    """A problem with the user's input, printed as one line without a traceback."""

    def __init__(self, message):
        # Keep it to one line even when the cause is a multi-line library message.
        super().__init__(" ".join(str(message).split()))


def first_line(error):
    """The first line of a library's error (they can run to pages), or its type's name."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
