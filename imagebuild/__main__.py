"""`python -m imagebuild` and the `imagebuild` command: Ctrl-C and SIGTERM end the run like `exit` from the first
line on (also while the CLI's modules are still being imported): files being written are removed, nothing
half-written stays, and no traceback is printed."""

import signal
import sys


def _quit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> None:
    signal.signal(signal.SIGINT, _quit)
    signal.signal(signal.SIGTERM, _quit)
    from imagebuild.cli import main as cli_main

    sys.exit(cli_main())


if __name__ == "__main__":
    main()
