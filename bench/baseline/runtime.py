"""A minimal Lambda runtime client for the Python baseline: the loop that
awslambdaric runs, without its C extension. It imports the handler module
(the "init" that Lambda times), then GETs /invocation/next and POSTs each
result, as the Runtime API documents. Lighter than the real Python runtime,
so the comparison favours the baseline."""
import importlib
import json
import os
import sys
import traceback
import urllib.request

API = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"


class Context:
    def __init__(self, request_id, deadline_ms):
        self.aws_request_id = request_id
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.deadline_ms = deadline_ms


def post(path, body):
    request = urllib.request.Request(API + path, data=json.dumps(body).encode(), method="POST")
    urllib.request.urlopen(request).read()


def main():
    module_name, function_name = os.environ.get("_HANDLER", "lambda_function.lambda_handler").rsplit(".", 1)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    try:
        handler = getattr(importlib.import_module(module_name), function_name)
    except Exception as err:  # noqa: BLE001 - reported to the Runtime API as Lambda does
        post("/init/error", {"errorMessage": str(err), "errorType": type(err).__name__})
        raise
    while True:
        with urllib.request.urlopen(API + "/invocation/next") as response:
            request_id = response.headers["Lambda-Runtime-Aws-Request-Id"]
            deadline_ms = int(response.headers["Lambda-Runtime-Deadline-Ms"])
            event = json.loads(response.read())
        try:
            result = handler(event, Context(request_id, deadline_ms))
            post(f"/invocation/{request_id}/response", result)
        except Exception as err:  # noqa: BLE001
            post(
                f"/invocation/{request_id}/error",
                {"errorMessage": str(err), "errorType": type(err).__name__,
                 "stackTrace": traceback.format_exc().splitlines()},
            )


if __name__ == "__main__":
    main()
