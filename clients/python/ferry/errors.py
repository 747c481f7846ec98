"""The exceptions of the ferry client and worker.

Every exception raised for a failure of ferry (not of the caller's own
arguments) is a ferry.Error. A refusal by the server is an ApiError carrying
the HTTP status and the API's error code and detail (docs/api.md, "Errors"),
as a subclass named after the code, so that callers catch what they can
handle:

    try:
        client.status(41)
    except ferry.NotFound:
        ...
"""

import builtins


class Error(Exception):
    """Any failure of ferry."""


class ConnectionError(Error, builtins.ConnectionError):
    """No answer from the server: it could not be reached, or the connection
    broke before the answer came."""


class TimeoutError(Error, builtins.TimeoutError):
    """A wait ran past its timeout; the jobs go on."""


class ApiError(Error):
    """The server refused a request (a 4xx or 5xx answer)."""

    def __init__(self, status, error, detail):
        super().__init__(f"the server answered {status} {error}: {detail}")
        self.status = status  # the HTTP status, e.g. 400
        self.error = error  # the API's code, e.g. "invalid_request"
        self.detail = detail  # one line saying why


class InvalidRequest(ApiError):
    """400: malformed JSON, an unknown field, a wrong type, a value out of range
    or over a limit. Nothing changed; sending it again cannot succeed."""


class Unauthorized(ApiError):
    """401: no token, or a wrong one."""


class NotFound(ApiError):
    """404: an unknown path, or an unknown job."""


class MethodNotAllowed(ApiError):
    """405: a known path with a method it does not take."""


class TooLarge(ApiError):
    """413: a body over the server's limit (32 MiB)."""


class InternalError(ApiError):
    """500: a fault of the server's own while answering."""


class Busy(ApiError):
    """503 busy: too many connections, event streams or bodies at once;
    nothing changed: try again."""


class StoreFailed(ApiError):
    """503 store_failed: the database could not commit; nothing was
    acknowledged and nothing changed."""


_BY_CODE = {
    "invalid_request": InvalidRequest,
    "unauthorized": Unauthorized,
    "not_found": NotFound,
    "method_not_allowed": MethodNotAllowed,
    "too_large": TooLarge,
    "internal": InternalError,
    "busy": Busy,
    "store_failed": StoreFailed,
}
_BY_STATUS = {400: InvalidRequest, 401: Unauthorized, 404: NotFound, 405: MethodNotAllowed,
              413: TooLarge, 500: InternalError}


def api_error(status, error, detail):
    """The ApiError for an answer: by its code, else by its status (an answer
    from something in front of the server, such as a proxy)."""
    kind = _BY_CODE.get(error) or _BY_STATUS.get(status, ApiError)
    return kind(status, error, detail)
