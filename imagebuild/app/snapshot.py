"""Snapshot ids where they meet the config and the network: the id a repo is really locked at,
`lock --snapshot`, `snapshot latest`, `repo rewrite`. The ids themselves are imagebuild.snapshots."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from imagebuild import log
from imagebuild.config import Config, RpmRepo, SnapshotSettings
from imagebuild.errors import ConfigError
from imagebuild.fsutil import write_atomic
from imagebuild.snapshots import Provider


def snapshot_time(snapshot: str | None) -> datetime:
    """The instant metadata must be valid at: the snapshot's, or now for floating repos without one."""
    from imagebuild.snapshots import parse_id

    return datetime.now(UTC) if snapshot is None else parse_id(snapshot)


def resolve_snapshot(repo: str, snap: SnapshotSettings, url: str, configured: str | None,
                     resolved: dict[tuple[str, str], str]) -> str | None:
    """The snapshot a repo is really locked at. Providers that can be asked (snapshot.debian.org and
    snapshot.ubuntu.com redirect an instant to the snapshot holding it; Pulp lists its snapshots) turn
    the configured id, an instant, into the id of the newest snapshot at or before it; the lock records
    that one. Other repos are at the configured id (or floating: None)."""
    if configured is None or not snap.askable:
        return configured
    key = (url, configured)
    if key not in resolved:
        from imagebuild.snapshots import latest

        assert snap.provider is not None
        with log.step(f"{repo}: snapshot at {configured}"):
            resolved[key] = latest(snap.provider, url, snapshot_time(configured), service=snap.service)
        if resolved[key] != configured:
            log.info(f"{repo}: snapshot {configured} is {resolved[key]} on the service")
    return resolved[key]


def own_snapshots(config: Config) -> list[str]:
    """What a new top-level snapshot does not move: repos with their own id, and floating repos."""
    notes = []
    moved = False
    for dname, d in sorted(config.distros.items()):
        for r in d.all_repos:
            if r.snap.snapshot is not None:
                notes.append(f"distros.{dname}: repo {r.name!r} keeps its own snapshot {r.snap.snapshot}")
            elif r.snapshot_for(config.snapshot) is not None:
                moved = True
    if not moved:
        notes.append("no repo is on the top-level snapshot (no snapshot-provider or {snapshot} URL): "
                     "the new id only changes the time Release files must be valid at")
    return notes


def with_snapshot(config: Config, snapshot: str, option: str = "--snapshot") -> Config:
    """The config re-pointed at another global snapshot id (repos with their own `snapshot` keep theirs)."""
    from dataclasses import replace

    from imagebuild.snapshots import validate_id

    return replace(config, snapshot=validate_id(snapshot, where=option))


_TOP_SNAPSHOT = re.compile(r"""^(snapshot\s*=\s*)("[^"\n]*"|'[^'\n]*')""", re.M)


def set_config_snapshot(path: Path, snapshot: str) -> bool:
    """Record a bumped snapshot in imagebuild.toml itself (the top-level value only; every other byte
    stays), so the lock written from it stays current for `lock --check`."""
    import tomllib

    text = path.read_text(encoding="utf-8")
    head_end = m.start() if (m := re.search(r"^\s*\[", text, re.M)) else len(text)
    found = _TOP_SNAPSHOT.search(text, 0, head_end)
    if found is not None:
        new = text[:found.start()] + f'{found.group(1)}"{snapshot}"' + text[found.end():]
    else:
        new = f'snapshot = "{snapshot}"\n' + text
    try:
        if tomllib.loads(new).get("snapshot") != snapshot:
            raise ValueError("the top-level snapshot key was not where it was looked for")
    except (tomllib.TOMLDecodeError, ValueError) as e:
        raise ConfigError(f"{path}: cannot set snapshot = \"{snapshot}\" in it ({e})",
                          hint="set it by hand; the lock was written for it") from None
    return write_atomic(path, new)


def parse_when(value: str | None) -> datetime:
    """`--at`: a snapshot id, a date, or an ISO 8601 UTC time; default now."""
    if value is None:
        return datetime.now(UTC)
    for fmt in ("%Y%m%dT%H%M%SZ", "%Y%m%dT%H%M%S", "%Y-%m-%d", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise ConfigError(f"--at {value!r}: not a time", hint="e.g. 20261101T000000Z, 2026-11-01 or 2026-11-01T06:00:00Z")


def latest_snapshots(config: Config, only: str | None, at: datetime) -> list[tuple[str, str, str]]:
    """(distro, repo, newest snapshot id at or before `at`) for every repo whose provider can be asked."""
    from imagebuild.snapshots import latest

    out = []
    seen = set()
    for dname, d in sorted(config.distros.items()):
        for r in d.all_repos:
            seen.add(r.name)
            if only is not None and r.name != only:
                continue
            if r.snap.provider is None or not r.snap.askable:
                if only is not None:
                    raise ConfigError(f"repo {only!r} has no snapshot-provider that can be asked",
                                      hint="set snapshot-provider = \"debian\", \"ubuntu\" or \"pulp\"")
                continue
            url = r.raw_url(d.arches[0], d.releasever) if isinstance(r, RpmRepo) else r.raw_url(d.arches[0])
            with log.step(f"{r.name}: latest snapshot"):
                out.append((dname, r.name, latest(r.snap.provider, url, at, service=r.snap.service)))
    if only is not None and only not in seen:
        raise ConfigError(f"no repo named {only!r}", hint=f"repos: {', '.join(sorted(seen))}")
    if not out:
        raise ConfigError("no repo has a snapshot-provider that can be asked (debian, ubuntu or pulp)",
                          hint="set snapshot-provider on the repos in imagebuild.toml")
    return out


def rewrite_repo_file(path: Path, snapshot: str, provider: Provider | None, *, service: str | None,
                      strip_credentials: bool, disable_third_party: bool,
                      baseurls: dict[str, str]) -> tuple[str, tuple[str, ...]]:
    """`repo rewrite` for one file: (new text, notes). Nothing is written here."""
    from imagebuild.repofiles import RepoFileKind, detect_kind, rewrite
    from imagebuild.snapshots import validate_id

    snapshot = validate_id(snapshot, where="--snapshot")
    kind = detect_kind(path)
    if provider is None:
        provider = Provider.PULP if kind is RepoFileKind.DNF_REPO else Provider.DEBIAN
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    result = rewrite(text, kind, snapshot, provider, source=str(path), strip_credentials=strip_credentials,
                     service=service, disable_third_party=disable_third_party,
                     baseurls=baseurls if kind is RepoFileKind.DNF_REPO else None)
    return result.text, result.notes
