"""The one error type for bad user input: entry points print its message without a traceback."""


class DataError(ValueError):
    """Bad input data or data options; the message names the file or option and what to do."""
