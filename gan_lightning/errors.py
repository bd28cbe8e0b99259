"""The one exception type that means "the user asked for something wrong".

Entry points catch it, print its message as a single line and exit with code 2; anything else is a bug
and keeps its traceback.
"""


class UserError(Exception):
    """Bad input: a config value, a file, a request. The message says what is wrong and what to do."""
