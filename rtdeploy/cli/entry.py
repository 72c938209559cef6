"""The ``rtdeploy`` process: its signal policy first, then the command line.

The console script starts here so that the policy of :mod:`rtdeploy.cli.signals` covers the
process from its first line: importing click and the commands takes a noticeable time, and a
signal that arrived then used to kill the process without a word (SIGTERM, exit 143 with no line)
or end in a traceback. This module imports nothing but the policy before installing it.
"""

from __future__ import annotations

import contextlib
import sys


def main() -> None:
    """Console-script entry point: ``rtdeploy ...``."""
    from rtdeploy.cli import signals

    signals.install()
    try:
        from rtdeploy.cli.main import main as run_command

        run_command()
    except KeyboardInterrupt as e:  # before the command's own handling was in place (importing it)
        message, status = signals.interruption(e)
        with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
            print(f"error: {message}", file=sys.stderr, flush=True)
        sys.exit(status)
    finally:
        signals.ignore_interrupts()  # shutdown: the exit status is decided, the outputs are complete


if __name__ == "__main__":
    main()
