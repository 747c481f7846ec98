"""ferry: submit jobs to a ferry server and serve functions from Python.

    import ferry

    client = ferry.Client("http://queue-host:7077", token)   # or FERRY_SERVER, FERRY_TOKEN
    ids = client.call_many("square", [1, 2, 3])
    for result in client.as_completed(ids, timeout=60):
        print(result.id, result.value)

    worker = ferry.Worker("http://queue-host:7077", token)

    @worker.function("square")
    def square(n):
        return n * n

    worker.run()

Standard library only; the HTTP API it speaks is docs/api.md.
"""

from ._http import VERSION as __version__
from .client import Client, Flow, Result, call_job, command_job
from .errors import (ApiError, Busy, ConnectionError, Error, InternalError, InvalidRequest,
                     MethodNotAllowed, NotFound, StoreFailed, TimeoutError, TooLarge, Unauthorized)
from .worker import Worker

__all__ = ["Client", "Flow", "Result", "call_job", "command_job", "Worker", "Error", "ConnectionError", "TimeoutError", "ApiError",
           "InvalidRequest", "Unauthorized", "NotFound", "MethodNotAllowed", "TooLarge",
           "InternalError", "Busy", "StoreFailed", "__version__"]
