"""Errors that the command line reports as one line with exit code 2."""


class LampError(Exception):
    """A problem with the user's input or files, reported without a traceback.

    Raise it with a message that says what is wrong and, where possible, what to do.
    """


class MissingExtraError(LampError):
    """An optional backend was asked for but its extra is not installed."""

    def __init__(self, what: str, extra: str, cause: BaseException | None = None):
        detail = f" ({cause})" if cause else ""
        super().__init__(
            f"{what} needs the '{extra}' extra: pip install 'lamp-toolkit[{extra}]'{detail}"
        )
        self.extra = extra
