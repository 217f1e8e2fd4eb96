"""Typed errors. Each carries the facts and a hint; the CLI maps the class to an exit code."""

from __future__ import annotations


class ImagebuildError(Exception):
    """Base class. `exit_code` follows the contract in README.md."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} (hint: {self.hint})"


class DriftError(ImagebuildError):
    """A difference, drift or stale lock was found."""

    exit_code = 1


class ConfigError(ImagebuildError):
    """Bad usage or configuration."""

    exit_code = 2


class ResolutionError(ImagebuildError):
    """The request cannot be satisfied. `chain` is the dependency path that failed."""

    exit_code = 3

    def __init__(self, message: str, *, chain: tuple[str, ...] = (), hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.chain = chain


class RepositoryError(ImagebuildError):
    """Repository, network or integrity failure."""

    exit_code = 4
