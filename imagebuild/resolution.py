"""What both resolvers (apt's and dnf's) report: why a package is in the result, and why a request failed."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reason:
    """Why a package is in the result: requested by the user, or the edge `parent --type--> group`."""

    parent: str | None  # None: requested
    dep_type: str
    relation: str

    def __str__(self) -> str:
        return "requested" if self.parent is None else f"{self.parent} {self.dep_type}: {self.relation}"


class Unsatisfiable(Exception):
    """A request that cannot be met. `chain` leads from it to what failed (apt: the dependency edges;
    dnf: libsolv's problem lines), for the caller to render."""

    def __init__(self, message: str, chain: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.chain = chain


class UnknownPackage(Unsatisfiable):
    """A request names nothing the repos hold; `chain[0]`, when there is one, is the request as given."""
