"""Typed errors: one exception class per gRPC status code, all subclasses of RagdError."""

CODE_NAMES = [
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED",
]


class RagdError(Exception):
    """A failed call: `code` is the wire status number, `code_name` its gRPC name."""

    code = 2
    #: Seconds until a rate-limited call would be admitted (RESOURCE_EXHAUSTED from a key's limit), else None.
    retry_after = None

    def __init__(self, message, code=None):
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message

    @property
    def code_name(self):
        return CODE_NAMES[self.code] if 0 <= self.code < len(CODE_NAMES) else "UNKNOWN"

    def __str__(self):
        return f"{self.code_name}: {self.message}"


def _make(name, number):
    cls_name = "".join(part.capitalize() for part in name.split("_"))
    return type(cls_name, (RagdError,), {"code": number, "__doc__": f"Status {name} ({number})."})


_BY_CODE = {n: _make(name, n) for n, name in enumerate(CODE_NAMES) if n}
globals().update({cls.__name__: cls for cls in _BY_CODE.values()})


def error_for(code, message):
    """The RagdError subclass for a wire status code."""
    cls = _BY_CODE.get(code, RagdError)
    return cls(message, code)

# Explicit names for type checkers and readers.
Cancelled = _BY_CODE[1]
InvalidArgument = _BY_CODE[3]
DeadlineExceeded = _BY_CODE[4]
NotFound = _BY_CODE[5]
ResourceExhausted = _BY_CODE[8]
FailedPrecondition = _BY_CODE[9]
Unimplemented = _BY_CODE[12]
Internal = _BY_CODE[13]
Unavailable = _BY_CODE[14]
