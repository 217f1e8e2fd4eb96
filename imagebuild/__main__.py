"""`python -m imagebuild` and the `imagebuild` command: Ctrl-C and SIGTERM end the run like `exit` from the first
line on (also while the CLI's modules are still being imported): files being written are removed, nothing
half-written stays, and no traceback is printed.

Python runs a signal handler in whatever code the main thread is in. Where that is a weakref callback, a `__del__`
or a GC callback (the import system has such callbacks), an exception the handler raises is printed as "Exception
ignored" and dropped, and the run would go on as if the signal had never come. Such a dropped exit is caught in
`sys.unraisablehook` and delivered again a millisecond later, from ordinary code."""

import signal
import sys

_pending = 0  # the signal being acted on


def _quit(signum: int, frame: object) -> None:
    global _pending
    _pending = _pending or signum
    raise SystemExit(128 + _pending)


def _again(signum: int, frame: object) -> None:
    _quit(_pending, frame)


def _unraisable(info: "sys.UnraisableHookArgs") -> None:
    if _pending and isinstance(info.exc_value, SystemExit):
        signal.setitimer(signal.ITIMER_REAL, 0.001)
        return
    sys.__unraisablehook__(info)


def install() -> None:
    sys.unraisablehook = _unraisable
    signal.signal(signal.SIGALRM, _again)
    signal.signal(signal.SIGINT, _quit)
    signal.signal(signal.SIGTERM, _quit)


def main() -> None:
    install()
    from imagebuild.cli import main as cli_main

    sys.exit(cli_main())


if __name__ == "__main__":
    main()
