"""Errors that the command-line tools print as one line instead of a traceback."""


def first_line(error: BaseException) -> str:
    """The first line of an error's message (HDF5 and TF messages span lines), at most 160
    characters, or the error's type name when it has no message."""
    text = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return text if len(text) <= 160 else text[:157] + "..."


class UserInputError(ValueError):
    """Bad user input (a path, flag, file or value): the message is one sentence saying what to do."""


class DataError(UserInputError):
    """A dataset that cannot be used as it is: names the path and the fix."""


class TrainingDiverged(UserInputError):
    """A loss became NaN or infinite; the message names the step and the loss term."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training, after a checkpoint of the last completed step was saved."""
