"""The one exception type that means "the user asked for something wrong", and how entry points end on it.

Entry points catch it, print its message as a single line and exit with code 2; anything else is a bug
and keeps its traceback.
"""

import sys


class UserError(Exception):
    """Bad input: a config value, a file, a request. The message says what is wrong and what to do."""


def fail(error: UserError) -> None:
    """The end of a command that was asked for something wrong: one line on stderr, exit code 2."""
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)
