"""The application layer: wires config, repositories, resolver, lock and BOM files together.

This is the only layer (besides the CLI) that touches the network, the output files and the terminal.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild import log
from imagebuild.apt.packages import FIELDS, R_ARCH, R_NAME, R_STATUS, R_VERSION, Record, parse_stanzas
from imagebuild.apt.release import Release
from imagebuild.apt.release import parse_date as parse_release_date
from imagebuild.apt.repository import PackagesIndex, ReleaseInfo, read_packages, read_release
from imagebuild.apt.resolver import Resolution, Resolver, UnknownPackage, Unsatisfiable
from imagebuild.apt.universe import Universe
from imagebuild.bom import read_bom, render_bom
from imagebuild.config import Config, Distro, Family, Role, RpmRepo, SnapshotSettings
from imagebuild.errors import ConfigError, DriftError, RepositoryError, ResolutionError
from imagebuild.fetch import Cache, redact
from imagebuild.fsutil import write_atomic
from imagebuild.lockfile import (
    LOCK_NAME,
    Lock,
    LockedPackage,
    LockedRepo,
    LockedTarget,
    read_lock,
    render_lock,
)
from imagebuild.snapshots import Provider

if TYPE_CHECKING:  # imported where used: every command pays for what it imports at start-up
    from imagebuild.bomdiff import TreeDiff
    from imagebuild.mirror import MirrorResult

BOM_DIR = "boms"


def did_you_mean(name: str, known: Iterable[str]) -> str | None:
    """A hint naming the known package names close to a misspelt `name` (one or two edits), if any."""
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.8)
    return f"did you mean {', '.join(close)}?" if close else None


def snapshot_time(snapshot: str | None) -> datetime:
    """The instant metadata must be valid at: the snapshot's, or now for floating repos without one."""
    from imagebuild.snapshots import parse_id

    return datetime.now(UTC) if snapshot is None else parse_id(snapshot)


def inputs_digest(config: Config) -> str:
    """Digest of everything in the config that decides the lock; `lock --check` compares it."""

    def file_digest(p: Path | None) -> str | None:
        return hashlib.sha256(p.read_bytes()).hexdigest() if p is not None else None

    def base_digests(d: Distro) -> dict[str, str | None]:
        return {arch: file_digest(d.base_for(arch)) for arch in d.arches}

    doc = {
        "snapshot": config.snapshot,
        "distros": {
            name: {
                "family": d.family.value, "arches": list(d.arches), "recommends": d.recommends,
                "base": base_digests(d),
                # URLs redacted: not even a hash of a repo password goes into the lock
                "rpm": [[{**asdict(r), "url": lock_url(config, r.url), "snap": snap_doc(r.snap),
                          "gpgkey": file_digest(r.gpgkey)} for r in d.rpm_repos],
                        d.releasever, list(d.modules),
                        list(d.exclude)],
                "repos": [
                    {"name": r.name, "url": lock_url(config, r.url), "suites": list(r.suites),
                     "components": list(r.components),
                     "flat": r.flat, "trusted": r.trusted, "signed-by": file_digest(r.signed_by),
                     "snapshot": snap_doc(r.snap)}
                    for r in d.repos
                ],
            }
            for name, d in sorted(config.distros.items())
        },
        "roles": {
            n: {"distro": r.distro, "packages": [str(p) for p in r.packages]} for n, r in sorted(config.roles.items())
        },
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def lock_url(config: Config, url: str) -> str:
    """A repo URL as the lock records it: without credentials, and a file: URL inside the project
    relative to it (`file:mirror/debian`), so a checkout elsewhere has the same lock."""
    url = redact(url)
    prefix = f"file://{config.root}/"
    return "file:" + url[len(prefix):] if url.startswith(prefix) else url


def snap_doc(snap: SnapshotSettings) -> dict[str, str | None]:
    return {"snapshot": snap.snapshot, "provider": snap.provider, "service": snap.service and redact(snap.service)}


def read_base(path: Path | None) -> list[Record]:
    """The base image's packages: a dpkg status file, or a BOM file (`name version arch` lines)."""
    if path is None:
        return []
    data = path.read_bytes()
    lines = data.decode("utf-8", "replace").splitlines()
    head = next((ln for ln in lines if ln.strip() and not ln.startswith("#")), "")
    if head.startswith("Package:"):
        return parse_stanzas(data)
    records = []
    empty = [""] * len(FIELDS)
    for e in read_bom(path):
        rec = list(empty)
        rec[R_NAME], rec[R_VERSION], rec[R_ARCH], rec[R_STATUS] = e.name, e.version, e.arch, "install ok installed"
        records.append(tuple(rec))
    return records


@dataclass
class _Target:
    distro: Distro
    arch: str
    universe: Universe
    repos: list[LockedRepo]


def _load_distro_arch(distro: Distro, arch: str, config: Config, cache: Cache,
                      releases: dict[tuple[str, str], tuple[ReleaseInfo, Release]],
                      resolved: dict[tuple[str, str], str]) -> _Target:
    universe = Universe(arch)
    locked: list[LockedRepo] = []
    for repo in distro.repos:
        snapshot = resolve_snapshot(repo.name, repo.snap, repo.raw_url(arch), repo.snapshot_for(config.snapshot),
                                    resolved)
        url = repo.url_for(arch, snapshot)
        at = snapshot_time(snapshot or config.snapshot)
        for suite in (("./",) if repo.flat else repo.suites):
            key = (url, suite)
            if key not in releases:
                with log.step(f"{repo.name} {suite}: Release"):
                    releases[key] = read_release(repo, url, suite, cache, at)
            info, release = releases[key]
            indices: list[PackagesIndex] = []
            for component in (("",) if repo.flat else repo.components):
                with log.step(f"{repo.name} {suite} {component or '.'} {arch}: Packages"):
                    index = read_packages(repo, url, info, release, component, arch, cache)
                indices.append(index)
                universe.add(index.records, index, info.pin_priority)
            locked.append(LockedRepo(
                distro=distro.name, arch=arch, name=repo.name, suite=info.suite, url=lock_url(config, info.url),
                snapshot=snapshot,
                release_sha256=info.sha256, date=info.date, valid_until=info.valid_until,
                indices=tuple(sorted((i.path, i.sha256) for i in indices)),
            ))
    base = read_base(distro.base_for(arch))
    foreign = sorted({r[R_ARCH] for r in base if r[R_ARCH] not in (arch, "all")})
    if foreign:
        raise ConfigError(f"distros.{distro.name}.base: {distro.base_for(arch)} holds {'/'.join(foreign)} packages, "
                          f"but this lock is for {arch}",
                          hint="use a base file per architecture: base = \"bases/minbase-{arch}.status\"")
    universe.add(base, None, 0)
    universe.seal()
    return _Target(distro, arch, universe, locked)


def _locked_packages(res: Resolution, universe: Universe) -> tuple[LockedPackage, ...]:
    out = []
    for name, v in res.installed.items():
        if name in res.added:
            origin = max((o for o in v.origins if o.index is not None), key=lambda o: o.priority)
            assert origin.index is not None
            r = res.reasons[name]
            out.append(LockedPackage(
                name=name, version=v.version, arch=v.arch, repo=origin.index.release.repo,
                suite=origin.index.release.suite, filename=origin.filename, size=origin.size,
                sha256=origin.sha256, required_by=r.parent, dep_type=r.dep_type or "requested",
                relation=r.relation,
            ))
        else:
            out.append(LockedPackage(name=name, version=v.version, arch=v.arch, repo="base", suite="",
                                     filename="", size=0, sha256="", required_by=None, dep_type="base",
                                     relation=""))
    return tuple(out)


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


def resolve_all(config: Config, cache: Cache | None = None) -> Lock:
    cache = cache or Cache()
    releases: dict[tuple[str, str], tuple[ReleaseInfo, Release]] = {}
    resolved: dict[tuple[str, str], str] = {}
    repos: list[LockedRepo] = []
    targets: list[LockedTarget] = []
    for dname, distro in sorted(config.distros.items()):
        roles = [r for _, r in sorted(config.roles.items()) if r.distro == dname]
        if not roles:
            continue
        if distro.family is Family.RPM:
            for arch in distro.arches:
                rpm_repos, rpm_targets = _lock_rpm(distro, arch, roles, config, cache, resolved)
                repos.extend(rpm_repos)
                targets.extend(rpm_targets)
            continue
        for arch in distro.arches:
            with log.step(f"{dname}/{arch}: reading repositories"):
                t = _load_distro_arch(distro, arch, config, cache, releases, resolved)
            repos.extend(t.repos)
            for role in roles:
                with log.step(f"{role.name}/{arch}: resolving"):
                    res = _resolve(t.universe, distro, role.name, arch, role.packages)
                targets.append(LockedTarget(
                    role=role.name, arch=arch, distro=dname, requests=tuple(str(p) for p in role.packages),
                    packages=_locked_packages(res, t.universe), removed=res.removed,
                ))
    return Lock(inputs_digest(config), tuple(repos), tuple(targets))


def _lock_rpm(distro: Distro, arch: str, roles: list[Role], config: Config, cache: Cache,
              resolved: dict[tuple[str, str], str]) -> tuple[list[LockedRepo], list[LockedTarget]]:
    from imagebuild.rpm.repository import read_repo
    from imagebuild.rpm.resolver import ModuleNotActive, RpmResolver

    metadata, locked = [], []
    for repo in distro.rpm_repos:
        snapshot = resolve_snapshot(repo.name, repo.snap, repo.raw_url(arch, distro.releasever),
                                    repo.snapshot_for(config.snapshot), resolved)
        with log.step(f"{repo.name} {arch}: repomd"):
            md = read_repo(repo, repo.url_for(arch, snapshot, distro.releasever), cache)
        metadata.append(md)
        locked.append(LockedRepo(distro=distro.name, arch=arch, name=repo.name, suite="", url=lock_url(config, md.url),
                                 snapshot=snapshot, release_sha256=md.repomd_sha256, date=md.revision,
                                 valid_until="", indices=md.files))
    base_path = distro.base_for(arch)
    base = read_bom(base_path) if base_path is not None else []
    # one pool per distro × arch: repos, base, excludes and modules are the distro's; each role gets
    # a fresh solver on it
    with log.step(f"{distro.name}/{arch}: loading the package pool"):
        resolver = RpmResolver(arch, metadata, base, distro.recommends, distro.modules, distro.exclude)
    targets = []
    for role in roles:
        with log.step(f"{role.name}/{arch}: resolving with libsolv"):
            try:
                res = resolver.install([str(p) for p in role.packages])
            except ModuleNotActive as e:
                raise ConfigError(f"role {role.name!r} ({arch}): {e.message}",
                                  hint=f"enable it for the distro: distros.{distro.name}.modules = "
                                       f"[\"{e.module}:{e.stream or 'STREAM'}\"]") from None
            except UnknownPackage as e:
                close = did_you_mean(e.chain[0], resolver.names()) if e.chain else None
                hint = close or "check the name, the repos and the excludes"
                raise ResolutionError(f"role {role.name!r} ({arch}): {e.message}", hint=hint) from None
            except Unsatisfiable as e:
                raise ResolutionError(f"role {role.name!r} ({arch}): {e.message}", chain=e.chain[1:]) from None
        packages = []
        for p in res.installed:
            r = res.reasons.get(p.name) if p.repo != "base" else None
            packages.append(LockedPackage(
                name=p.name, version=p.evr, arch=p.arch, repo=p.repo, suite="", filename=p.location, size=p.size,
                sha256=p.sha256, required_by=r.parent if r else None,
                dep_type=("base" if p.repo == "base" else (r.dep_type if r and r.dep_type else "requested")),
                relation=r.relation if r else ""))
        targets.append(LockedTarget(role=role.name, arch=arch, distro=distro.name,
                                    requests=tuple(str(p) for p in role.packages), packages=tuple(packages),
                                    removed=res.removed, family=Family.RPM.value))
    return locked, targets


def skew_warnings(config: Config, lock: Lock) -> list[str]:
    """Repos of one distro locked at snapshots far apart (as the services resolved them): a package of the
    newer one may need a version only the newer one has (a vendor repo wanting `dkms >= 3.1.8` from a
    stale EPEL)."""
    out = []
    for dname, d in sorted(config.distros.items()):
        # in config order among equal ids (the lock keeps it), so the message names the first repo
        ids = sorted(dict.fromkeys((r.snapshot, r.name) for r in lock.repos
                                   if r.distro == dname and r.snapshot is not None), key=lambda x: x[0])
        if len(ids) < 2:
            continue
        (first, first_repo), (last, last_repo) = ids[0], ids[-1]
        spread = snapshot_time(last) - snapshot_time(first)
        if spread.total_seconds() > d.max_snapshot_skew_days * 86400:
            out.append(f"distros.{dname}: repo {first_repo!r} is at snapshot {first} and {last_repo!r} at {last}, "
                       f"{spread.days} days apart (max-snapshot-skew-days = {d.max_snapshot_skew_days}): a package of "
                       "the newer one may need versions the older one lacks")
    return out


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


def lock_diff(previous: Lock | None, new: Lock) -> TreeDiff:
    """Per role × arch, what re-locking changes in the images (as `bom diff` of the two boms/ would)."""
    from imagebuild.bomdiff import FileDiff, FileStatus, TreeDiff, diff_boms

    old = {t.key: t for t in previous.targets} if previous is not None else {}
    cur = {t.key: t for t in new.targets}
    files = []
    for key in sorted(old.keys() | cur.keys()):
        a, b = old.get(key), cur.get(key)
        family = Family((b or a).family)  # type: ignore[union-attr]
        status = FileStatus.BOTH if a and b else FileStatus.NEW if b else FileStatus.GONE
        files.append(FileDiff(f"{key}.bom", status, diff_boms(a.bom() if a else [], b.bom() if b else [], family)))
    return TreeDiff(tuple(files))


def refuse_rollback(previous: Lock, new: Lock) -> None:
    """A Release older than the one the lock already records, at the same URL and snapshot, is a
    rollback (a stale mirror or a replay of old signed metadata): refuse it."""
    def instant(date: str) -> datetime | None:
        # apt: the Release's Date; dnf: repomd's revision, a Unix time as createrepo_c and Pulp write it
        return datetime.fromtimestamp(int(date), UTC) if date.isdigit() else parse_release_date(date)

    before = {(r.distro, r.arch, r.name, r.suite, r.url, r.snapshot): r for r in previous.repos}
    for r in new.repos:
        old = before.get((r.distro, r.arch, r.name, r.suite, r.url, r.snapshot))
        if old is None:
            continue
        old_date, new_date = instant(old.date), instant(r.date)
        if old_date is not None and new_date is not None and new_date < old_date:
            what = f"{r.suite} Release" if r.suite else "repomd.xml"
            raise RepositoryError(
                f"repo {r.name!r} ({r.arch}): {what} dated {new_date:%Y-%m-%d %H:%M:%S} UTC is older than the "
                f"{old_date:%Y-%m-%d %H:%M:%S} UTC recorded in {LOCK_NAME}: refusing a rollback",
                hint="a mirror is serving stale metadata; to go back on purpose, change the snapshot id",
            )


def _resolve(universe: Universe, distro: Distro, role: str, arch: str, requests: tuple) -> Resolution:  # type: ignore[type-arg]
    try:
        return Resolver(universe, distro.recommends).install(requests)
    except UnknownPackage as e:
        hint = None
        if e.chain:
            hint = did_you_mean(e.chain[0].split("=")[0].split("/")[0], universe.names()) or \
                "check the name and the configured repos"
        raise ResolutionError(f"role {role!r} ({arch}): {e.message}", chain=e.chain, hint=hint) from None
    except Unsatisfiable as e:
        raise ResolutionError(f"role {role!r} ({arch}): {e.message}", chain=e.chain) from None


def bom_header(t: LockedTarget) -> list[str]:
    tool = ("rpm -qa --qf '%{NAME} %{EVR} %{ARCH}'" if t.family == Family.RPM.value
            else "dpkg-query -W -f '${Package} ${Version} ${Architecture}'")
    return [f"imagebuild BOM: role {t.role}, arch {t.arch}, distro {t.distro}, family {t.family}",
            f"name version arch (as {tool} prints)"]


def outputs(lock: Lock) -> dict[str, str]:
    """Every file `lock` writes, relative to the project root, with its content."""
    files = {LOCK_NAME: render_lock(lock)}
    for t in lock.targets:
        files[f"{BOM_DIR}/{t.key}.bom"] = render_bom(t.bom(), bom_header(t))
    return files


def write_outputs(root: Path, files: dict[str, str]) -> list[str]:
    changed = []
    # BOMs first, the lock last: an interrupted run leaves an old lock that --check flags as stale
    for rel in sorted(files, key=lambda f: f == LOCK_NAME):
        if write_atomic(root / rel, files[rel]):
            changed.append(rel)
    return changed


def previous_lock(config: Config) -> Lock | None:
    """The lock already in the project, if there is a readable one (an unreadable one is replaced)."""
    path = config.root / LOCK_NAME
    if not path.exists():
        return None
    try:
        return read_lock(path)
    except ConfigError as e:
        log.warn(f"{e.message}; it will be replaced")
        return None


def check(config: Config) -> list[str]:
    """Why the lock in the project is stale against the config (empty: it is current)."""
    root = config.root
    if not (root / LOCK_NAME).exists():
        return [f"there is no {LOCK_NAME} next to {config.path.name}"]
    lock = read_lock(root / LOCK_NAME)
    problems = []
    if lock.inputs_digest != inputs_digest(config):
        problems.append(f"{LOCK_NAME} was made from a different config (roles, repos, snapshot or base changed)")
    expected = {f"{BOM_DIR}/{t.key}.bom": render_bom(t.bom(), bom_header(t)) for t in lock.targets}
    for rel, text in sorted(expected.items()):
        path = root / rel
        try:
            if path.read_text(encoding="utf-8") != text:
                problems.append(f"{rel} does not match {LOCK_NAME}")
        except OSError:
            problems.append(f"{rel} is missing")
    return problems


def why(config: Config, package: str, role: str, arch: str | None) -> list[str]:
    lock = read_lock(config.root / LOCK_NAME)
    if role not in config.roles:
        raise ConfigError(f"unknown role {role!r}", hint=f"roles: {', '.join(sorted(config.roles))}")
    targets = [t for t in lock.targets if t.role == role and (arch is None or t.arch == arch)]
    if not targets:
        raise ConfigError(f"the lock has no entry for role {role!r}" + (f" on {arch}" if arch else ""),
                          hint="run `imagebuild lock`")
    lines: list[str] = []
    for t in targets:
        by_name = {p.name: p for p in t.packages}
        p = by_name.get(package)
        if p is None:
            raise DriftError(f"{package} is not in the {t.role} image on {t.arch}")
        lines.append(f"{t.role}/{t.arch}: {p.name} {p.version} {p.arch}")
        if p.dep_type == "base":
            lines.append("  part of the base image")
            continue
        chain: list[LockedPackage] = []
        seen: set[str] = set()
        cur: LockedPackage | None = p
        while cur is not None and cur.name not in seen:
            seen.add(cur.name)
            chain.append(cur)
            cur = by_name.get(cur.required_by) if cur.required_by else None
        for depth, link in enumerate(reversed(chain)):
            pad = "  " + "   " * depth
            if link.required_by is None:
                lines.append(f"{pad}{link.name} {link.version}  (requested: {link.relation})")
            else:
                edge = f"{link.required_by} {link.dep_type}: {link.relation}"
                lines.append(f"{pad}└─ {link.name} {link.version}  ({edge})")
    return lines


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
        if r.url.startswith("file:") and not r.url.startswith("file://"):
            return f"file://{config.root}/{r.url[len('file:'):]}"
        return r.url

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
