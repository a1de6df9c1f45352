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
