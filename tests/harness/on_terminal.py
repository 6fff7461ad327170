#!/usr/bin/env python3
"""Runs a command as a person at a terminal would: its stdin and stderr on a
pseudo-terminal (stdout stays a pipe, as in `s3fan destroy > report.txt`).
When the terminal shows QUESTION, it types ANSWER and Enter, once; then it
reads the terminal until the command exits.

    on_terminal.py QUESTION ANSWER COMMAND [ARG...]

Prints one JSON document: {"code": exit status (or -signal), "asked": whether
QUESTION appeared, "terminal": what the terminal showed, "stdout": ...}.
The command's environment is this process's. It gives up (kills the command)
after --timeout seconds, 300 by default, so a command that never asks or
never ends fails the test rather than hanging it.
"""

import json
import os
import pty
import select
import subprocess
import sys
import tempfile
import time


def read_some(controller):
    """What the terminal shows next; b"" once every end of it is closed
    (Linux answers EIO then)."""
    try:
        return os.read(controller, 65536)
    except OSError:
        return b""


def main():
    args = sys.argv[1:]
    timeout = 300.0
    if args[:1] == ["--timeout"]:
        timeout, args = float(args[1]), args[2:]
    question, answer, command = args[0].encode(), args[1].encode(), args[2:]
    controller, terminal = pty.openpty()
    with tempfile.TemporaryFile() as stdout:
        child = subprocess.Popen(
            command, stdin=terminal, stderr=terminal, stdout=stdout, start_new_session=True
        )
        os.close(terminal)
        shown, asked = b"", False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.2)
            if ready:
                chunk = read_some(controller)
                if not chunk:
                    break
                shown += chunk
                if not asked and question in shown:
                    asked = True
                    os.write(controller, answer + b"\n")
            elif child.poll() is not None:
                break
        else:
            child.kill()
        code = child.wait()
        # What the command wrote just before it ended, not read yet.
        while select.select([controller], [], [], 0)[0]:
            chunk = read_some(controller)
            if not chunk:
                break
            shown += chunk
        stdout.seek(0)
        print(
            json.dumps(
                {
                    "code": code,
                    "asked": asked,
                    "terminal": shown.decode("utf-8", "replace"),
                    "stdout": stdout.read().decode("utf-8", "replace"),
                }
            )
        )


if __name__ == "__main__":
    main()
