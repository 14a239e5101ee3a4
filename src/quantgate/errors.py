"""The exit-code contract and the one exception type a user's mistake raises.

0 = every gated model within budget, 1 = at least one over budget,
2 = at least one could not be judged (or the command itself was misused).
"""

from __future__ import annotations

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_ERROR = 2


class UserError(Exception):
    """A mistake the user can fix: printed as one line, exit code 2, never a traceback.

    The message should name the file, the field and the fix.
    """

    exit_code = EXIT_ERROR

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message
