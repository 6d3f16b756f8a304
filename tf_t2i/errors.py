"""Errors that the command-line tools print as one line instead of a traceback."""


class UserInputError(ValueError):
    """Bad user input (a path, flag, file or value): the message is one sentence saying what to do."""


class DataError(UserInputError):
    """A dataset that cannot be used as it is: names the path and the fix."""
