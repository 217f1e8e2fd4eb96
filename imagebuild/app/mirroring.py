"""`mirror`: the lock's files into local repos. Here, not in imagebuild.mirror, because the download URLs
come from the config (with credentials the lock never records)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild import log
from imagebuild.app.lock import inputs_digest, lock_url, url_from_lock
from imagebuild.apt.packages import R_ARCH, R_NAME, R_VERSION
from imagebuild.config import Config, RpmRepo
from imagebuild.errors import ConfigError
from imagebuild.fetch import Cache
from imagebuild.lockfile import LOCK_NAME, Lock, LockedRepo, read_lock

if TYPE_CHECKING:  # imported where used: every command pays for what it imports at start-up
    from imagebuild.mirror import MirrorResult


def mirror(config: Config, roles: tuple[str, ...], repos: tuple[str, ...], out: Path) -> MirrorResult:
    """`imagebuild mirror`: the locked files of `roles` (all by default), from `repos` (all by default)."""
    from imagebuild import mirror as mirror_mod

    lock = read_lock(config.root / LOCK_NAME)
    if lock.inputs_digest != inputs_digest(config):
        log.warn(f"{LOCK_NAME} is stale against {config.path.name}; mirroring what the lock names")
    for r in roles:
        if r not in config.roles:
            raise ConfigError(f"unknown role {r!r}", hint=f"roles: {', '.join(sorted(config.roles))}")
    targets = [t for t in lock.targets if not roles or t.role in roles]
    known_repos = {r.name for r in lock.repos}
    for name in repos:
        if name not in known_repos:
            raise ConfigError(f"the lock has no repo {name!r}", hint=f"repos: {', '.join(sorted(known_repos))}")

    def repo_url(r: LockedRepo) -> str:
        """The URL to download from: the configured one (it may carry credentials) when it is still the
        one the lock was made from, else the lock's own."""
        d = config.distros.get(r.distro)
        for repo in d.all_repos if d is not None else ():
            if repo.name != r.name:
                continue
            assert d is not None
            url = (repo.url_for(r.arch, r.snapshot, d.releasever) if isinstance(repo, RpmRepo)
                   else repo.url_for(r.arch, r.snapshot))
            if lock_url(config, url) == r.url:
                return url
        return url_from_lock(config, r.url)

    with log.step(f"mirroring into {out}"):
        return mirror_mod.mirror(lock, targets, out, repo_url=repo_url, repos=set(repos) or None,
                                 priorities=archive_priorities(lock, Cache()))


def archive_priorities(lock: Lock, cache: Cache) -> dict[tuple[str, str, str], str]:
    """The Priority the archive's Packages indices gave each deb package of the lock (its override can differ
    from the .deb's own), from the indices the lock names, as far as the metadata cache still has them."""
    from imagebuild.apt.packages import R_PRIORITY
    from imagebuild.apt.repository import cached_records

    out: dict[tuple[str, str, str], str] = {}
    for sha in sorted({sha for r in lock.repos if r.suite for _, sha in r.indices}):
        for rec in cached_records(cache, sha) or ():
            if rec[R_PRIORITY]:
                out.setdefault((rec[R_NAME], rec[R_VERSION], rec[R_ARCH]), rec[R_PRIORITY])
    return out
