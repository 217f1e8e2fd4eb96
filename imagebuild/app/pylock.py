"""The pip requirements of roles, locked with their hashes through hashin (PyPI's JSON API).

Each `name==version` of a role's `pip` becomes the version and the sha256 of every file the index has for it;
the image installs them with `pip install --require-hashes --no-deps`, so nothing unhashed gets in.
"""

from __future__ import annotations

from imagebuild import log
from imagebuild.config import Role
from imagebuild.errors import RepositoryError, ResolutionError
from imagebuild.fetch import redact
from imagebuild.lockfile import LockedPip


def lock_pip(role: Role) -> tuple[LockedPip, ...]:
    import hashin

    out = []
    for spec in role.pip:
        name, _, version = spec.partition("==")
        where = f"role {role.name!r}: pip {spec!r}"
        kwargs = {"index_url": role.pip_index.rstrip("/") + "/"} if role.pip_index else {}
        with log.step(f"{role.name}: pip {spec}"):
            try:
                data = hashin.get_package_hashes(name, version=version, algorithm="sha256", **kwargs)
            except hashin.PackageNotFoundError:
                raise ResolutionError(f"{where}: the index has no package {name!r}",
                                      hint="check the name, and pip-index") from None
            except hashin.PackageError as e:
                raise ResolutionError(f"{where}: {e}", hint="check the name and the version on the index") from None
            except (OSError, ValueError) as e:  # urllib's HTTPError/URLError are OSErrors; bad JSON a ValueError
                raise RepositoryError(f"{where}: the index did not answer ({redact(str(e))})",
                                      hint="check pip-index and the network") from None
        hashes = tuple(sorted({h["hash"] for h in data["hashes"]}))
        if not hashes:
            raise ResolutionError(f"{where}: the index lists no files for it")
        out.append(LockedPip(data["package"], data["version"], hashes))
    return tuple(out)
