"""`lock` and `lock --check`: every role × arch resolved against the repositories, into snapshots.lock and
boms/. The only place the lock is made; the other commands read it."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import struct
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from imagebuild import log
from imagebuild.app.snapshot import resolve_snapshot, snapshot_time
from imagebuild.bom import read_bom, render_bom
from imagebuild.config import Config, ContainerSpec, Distro, Family, Role, SnapshotSettings
from imagebuild.errors import ConfigError, RepositoryError, ResolutionError
from imagebuild.fetch import Cache, redact
from imagebuild.fsutil import write_atomic
from imagebuild.lockfile import (
    LOCK_NAME,
    Lock,
    LockedPackage,
    LockedRepo,
    LockedTarget,
    parse_lock,
    read_lock,
    render_lock,
)
from imagebuild.resolution import UnknownPackage, Unsatisfiable

if TYPE_CHECKING:  # imported where used: every command pays for what it imports at start-up
    from imagebuild.apt.packages import Record
    from imagebuild.apt.release import Release
    from imagebuild.apt.repository import PackagesIndex, ReleaseInfo
    from imagebuild.apt.resolver import Resolution
    from imagebuild.apt.universe import Universe, Version
    from imagebuild.bomdiff import TreeDiff
    from imagebuild.rpm.resolver import RpmResolution


BOM_DIR = "boms"


def did_you_mean(name: str, known: Iterable[str]) -> str | None:
    """A hint naming the known package names close to a misspelt `name` (one or two edits), if any."""
    import difflib

    close = difflib.get_close_matches(name, known, n=3, cutoff=0.8)
    return f"did you mean {', '.join(close)}?" if close else None


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
            n: {"distro": r.distro, "packages": [str(p) for p in r.packages],
                # only when set: configs without pip keep the digest (and lock) they had
                **({"pip": list(r.pip), "pip-index": r.pip_index and redact(r.pip_index)} if r.pip else {}),
                **({"container": container_doc(r.container, config.distros[r.distro])} if r.container else {})}
            for n, r in sorted(config.roles.items())
        },
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def container_doc(spec: ContainerSpec, distro: Distro) -> dict[str, object]:
    """What decides a container's lock: its settings, the BOM of its base and the default rule in force."""
    from imagebuild import PACKAGE_DIR

    rule = (PACKAGE_DIR / "data/container-rule.toml").read_bytes()
    boms = {arch: hashlib.sha256(p.read_bytes()).hexdigest() for arch in distro.arches
            if (p := spec.base_bom_for(arch)) is not None}
    return {"base": spec.base, "base-bom": boms,
            "exclude": list(spec.exclude), "rule": hashlib.sha256(rule).hexdigest(),
            "packages": [str(p) for p in spec.packages] if spec.packages is not None else None}


def lock_url(config: Config, url: str) -> str:
    """A repo URL as the lock records it: without credentials, and a file: URL inside the project
    relative to it (`file:mirror/debian`), so a checkout elsewhere has the same lock."""
    url = redact(url)
    prefix = f"file://{config.root}/"
    return "file:" + url[len(prefix):] if url.startswith(prefix) else url


def url_from_lock(config: Config, url: str) -> str:
    """The fetchable form of a URL the lock records: a project-relative `file:` made absolute again."""
    return f"file://{config.root}/{url[len('file:'):]}" if url.startswith("file:") and not url.startswith(
        "file://") else url


def snap_doc(snap: SnapshotSettings) -> dict[str, str | None]:
    return {"snapshot": snap.snapshot, "provider": snap.provider, "service": snap.service and redact(snap.service)}


def read_base(path: Path | None) -> list[Record]:
    """The base image's packages: a dpkg status file, or a BOM file (`name version arch` lines)."""
    from imagebuild.apt.packages import FIELDS, R_ARCH, R_NAME, R_STATUS, R_VERSION, parse_stanzas

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


class _Target(NamedTuple):
    distro: Distro
    arch: str
    universe: Universe
    repos: list[LockedRepo]


def _load_distro_arch(distro: Distro, arch: str, config: Config, cache: Cache,
                      releases: dict[tuple[str, str], tuple[ReleaseInfo, Release]],
                      resolved: dict[tuple[str, str], str]) -> _Target:
    from imagebuild.apt.packages import R_ARCH
    from imagebuild.apt.repository import read_packages, read_release

    added: list[tuple[PackagesIndex, int]] = []
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
                if snapshot is None and config.snapshot is None and releases[key][0].valid_until:
                    # the one wall-clock default left: said out loud, since the same lock fails once it expires
                    log.warn(f"repo {repo.name!r} {suite}: no `snapshot` is set, so its Release is checked against "
                             f"the current time; it expires {releases[key][0].valid_until} (set snapshot = "
                             "\"YYYYMMDDTHHMMSSZ\" in imagebuild.toml to lock an instant)")
            info, release = releases[key]
            indices: list[PackagesIndex] = []
            for component in (("",) if repo.flat else repo.components):
                with log.step(f"{repo.name} {suite} {component or '.'} {arch}: Packages"):
                    index = read_packages(repo, url, info, release, component, arch, cache)
                indices.append(index)
                added.append((index, info.pin_priority))
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
    universe = _universe(arch, added, cache)
    universe.add(base, None, 0)
    universe.seal()
    return _Target(distro, arch, universe, locked)


def _universe(arch: str, indices: list[tuple[PackagesIndex, int]], cache: Cache) -> Universe:
    """The universe of the indices, from the one saved when they were first read together (the same files and
    priorities) or built from their records and saved."""
    from imagebuild.apt.universe import Universe, store_key

    saved = cache.derived_path("universe", store_key(arch, indices))
    universe = Universe.load(saved, arch, indices)
    if universe is None and _save_universe(arch, indices, saved):
        universe = Universe.load(saved, arch, indices)  # read as a warm run reads it
    if universe is None:  # the cache is unwritable: built in memory
        universe = Universe(arch)
        for index, priority in indices:
            universe.add(index.records, index, priority)
    return universe


def _save_universe(arch: str, indices: list[tuple[PackagesIndex, int]], saved: Path) -> bool:
    """Build the universe of `indices` for saving only, without holding their records (a cold lock's memory is
    the records), and save it; whether that worked."""
    from imagebuild.apt.universe import Universe

    built = Universe(arch)
    for index, priority in indices:
        built.add(index.records, index, priority, keep=False)
    try:
        built.save(saved)
    except OSError:
        return False
    return True


def _depends(v: Version, installed: dict[str, Version], weak: bool, universe: Universe) -> tuple[str, ...]:
    """The installed packages that meet `v`'s Pre-Depends and Depends (and Recommends with `weak`): the edges
    `why --reverse` walks, as apt's autoremove does."""
    from imagebuild.apt.universe import DepType

    kinds = (DepType.PRE_DEPENDS, DepType.DEPENDS, DepType.RECOMMENDS) if weak else (DepType.PRE_DEPENDS,
                                                                                     DepType.DEPENDS)
    out: dict[str, None] = {}
    for kind, group in v.deps:
        if kind not in kinds:
            continue
        for rel in group:
            for target in universe.targets(rel):
                if installed.get(target.name) is target and target.name != v.name:
                    out[target.name] = None
    return tuple(sorted(out))


def _locked_packages(res: Resolution, universe: Universe, weak: bool = False) -> tuple[LockedPackage, ...]:
    out = []
    for name, v in res.installed.items():
        depends = _depends(v, res.installed, weak, universe)
        if name in res.added:
            origin = max((o for o in v.origins if o.index is not None), key=lambda o: o.priority)
            assert origin.index is not None
            r = res.reasons[name]
            out.append(LockedPackage(
                name=name, version=v.version, arch=v.arch, repo=origin.index.release.repo,
                suite=origin.index.release.suite, filename=origin.filename, size=origin.size,
                sha256=origin.sha256, required_by=r.parent, dep_type=r.dep_type or "requested",
                relation=r.relation, depends=depends,
            ))
        else:
            out.append(LockedPackage(name=name, version=v.version, arch=v.arch, repo="base", suite="",
                                     filename="", size=0, sha256="", required_by=None, dep_type="base",
                                     relation="", depends=depends))
    return tuple(out)


def resolve_all(config: Config, cache: Cache | None = None) -> Lock:
    cache = cache or Cache()
    jobs = [(d, arch, _roles_of(config, name)) for name, d in sorted(config.distros.items())
            if _roles_of(config, name) for arch in d.arches]
    ahead = _Ahead(jobs[1:], config, cache)
    try:
        return _resolve_all(config, cache, jobs, ahead)
    finally:
        ahead.close()


def _roles_of(config: Config, distro: str) -> list[Role]:
    return [r for _, r in sorted(config.roles.items()) if r.distro == distro]


_Job = tuple[Distro, str, list[Role]]  # one distro × arch target and the roles locked for it
_Releases = dict[tuple[str, str], tuple["ReleaseInfo", "Release"]]


class _Ahead:
    """The distro × arch targets after the first, locked by a child process on another core while this one
    locks the first: reading the indices or repodata (cold: decompressing and parsing them, for rpm into the
    cached .solv files) and resolving the roles are one core's worth per target. Each result is the same function
    of the same inputs the parent would compute (`_lock_target`), handed over pickled in a file of its own, with
    the Releases and snapshot ids it was resolved against: the parent takes it only if those, and the digest of
    every repo it locked, agree with what the run has already read (a repository that changed between the two
    reads is read once more, by the parent, as before). What the child prints is kept and printed by the parent
    when it takes the result; a child that fails or is not taken costs nothing but its core: the parent locks
    that target itself and reports what goes wrong."""

    def __init__(self, jobs: list[_Job], config: Config, cache: Cache) -> None:
        self.pid, self.taken, self.read, self.relayed = 0, 0, 0, 0
        self.files = contextlib.ExitStack()
        if not jobs or len(os.sched_getaffinity(0)) < 2:  # the CPUs this process may run on
            return
        import pickle
        # both closed by close(). The child writes them, and says after each result where the two files end;
        # the parent reads them with pread (their file offset is the child's: one open file for both)
        self.results = self.files.enter_context(tempfile.TemporaryFile())  # noqa: SIM115
        self.err = self.files.enter_context(tempfile.TemporaryFile())  # noqa: SIM115
        self.pipe, out = os.pipe()
        sys.stderr.flush()
        self.pid = os.fork()
        if self.pid:
            os.close(out)
            return
        code = 1
        try:
            os.close(self.pipe)
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(self.err.fileno(), 2)
            from imagebuild import fetch

            fetch.forget_session()  # the parent's connections are the parent's
            releases: _Releases = {}
            resolved: dict[tuple[str, str], str] = {}
            for distro, arch, roles in jobs:
                repos, targets = _lock_target(distro, arch, roles, config, cache, releases, resolved)
                pickle.dump((releases, resolved, repos, targets), self.results, pickle.HIGHEST_PROTOCOL)
                self.results.flush()
                sys.stderr.flush()
                os.write(out, struct.pack("<QQ", self.results.tell(), os.lseek(2, 0, os.SEEK_CUR)))
            code = 0
        finally:
            os._exit(code)  # nothing of the parent's runs here: no atexit, no buffered output

    def take(self, n: int, releases: _Releases, resolved: dict[tuple[str, str], str],
             held: Iterable[LockedRepo] = ()) -> tuple[list[LockedRepo], list[LockedTarget]] | None:
        """The child's `n`th target (its repos and targets; taken in order), once the child has it, if it was
        resolved against the Releases and snapshot ids in `releases` and `resolved` where those have the same keys
        (then those gain the child's others), and against the digest each repo of the same URL and suite has in
        `held` (the repos locked so far); None when the child stopped before it, or read something else."""
        assert n == self.taken
        self.taken += 1
        ends = b""
        while self.pid and len(ends) < 16:
            got = os.read(self.pipe, 16 - len(ends))
            if not got:
                self.stop()
            ends += got
        if len(ends) < 16:
            return None
        end, said = struct.unpack("<QQ", ends)
        import pickle

        data, self.read = os.pread(self.results.fileno(), end - self.read, self.read), end
        theirs, their_snapshots, repos, targets = pickle.loads(data)
        printed = os.pread(self.err.fileno(), said - self.relayed, self.relayed).decode(
            "utf-8", errors="replace").splitlines(keepends=True)
        self.relayed = said
        digests = {(r.url, r.suite): r.release_sha256 for r in held}
        if any(k in releases and releases[k][0].sha256 != v[0].sha256 for k, v in theirs.items()) or \
                any(resolved.get(k, v) != v for k, v in their_snapshots.items()) or \
                any(digests.get((r.url, r.suite), r.release_sha256) != r.release_sha256 for r in repos):
            return None
        for line in printed:
            if line.startswith("warning: "):
                log.warn(line.removeprefix("warning: ").rstrip("\n"))  # once, if the parent said it too
            else:
                sys.stderr.write(line)
        for k, v in theirs.items():
            releases.setdefault(k, v)
        for k, s in their_snapshots.items():
            resolved.setdefault(k, s)
        return repos, targets

    def stop(self) -> None:
        if self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)  # its temporary files go with it, as in an interrupted run
            os.waitpid(self.pid, 0)
            os.close(self.pipe)
            self.pid = 0

    def close(self) -> None:
        self.stop()
        self.files.close()


def _resolve_all(config: Config, cache: Cache, jobs: list[_Job], ahead: _Ahead) -> Lock:
    releases: _Releases = {}
    resolved: dict[tuple[str, str], str] = {}
    repos: list[LockedRepo] = []
    targets: list[LockedTarget] = []
    # the first target by this process, the others by the child if it can
    for n, (distro, arch, roles) in enumerate(jobs):
        got = (ahead.take(n - 1, releases, resolved, repos) if n else None) or \
            _lock_target(distro, arch, roles, config, cache, releases, resolved)
        repos.extend(got[0])
        targets.extend(got[1])
    if any(r.pip for r in config.roles.values()):
        from dataclasses import replace

        from imagebuild.app.pylock import lock_pip

        pins = {r.name: lock_pip(r) for r in config.roles.values() if r.pip}
        targets = [replace(t, pip=pins.get(t.role, ())) for t in targets]
    return Lock(inputs_digest(config), tuple(repos), tuple(targets))


def _lock_target(distro: Distro, arch: str, roles: list[Role], config: Config, cache: Cache, releases: _Releases,
                 resolved: dict[tuple[str, str], str]) -> tuple[list[LockedRepo], list[LockedTarget]]:
    """One distro × arch target: its repos as locked, and a locked target per role (and container)."""
    if distro.family is Family.RPM:
        return _lock_rpm(distro, arch, roles, config, cache, resolved)
    return _lock_deb(distro, arch, roles, config, cache, releases, resolved)


def _lock_deb(distro: Distro, arch: str, roles: list[Role], config: Config, cache: Cache, releases: _Releases,
              resolved: dict[tuple[str, str], str]) -> tuple[list[LockedRepo], list[LockedTarget]]:
    with log.step(f"{distro.name}/{arch}: reading repositories"):
        t = _load_distro_arch(distro, arch, config, cache, releases, resolved)
    targets = []
    for role in roles:
        with log.step(f"{role.name}/{arch}: resolving"):
            res = _resolve(t.universe, distro, role.name, arch, role.packages)
        node = LockedTarget(
            role=role.name, arch=arch, distro=distro.name, requests=tuple(str(p) for p in role.packages),
            packages=_locked_packages(res, t.universe, distro.recommends), removed=res.removed,
        )
        targets.append(node)
        if role.container is not None:
            from imagebuild.app.containers import lock_deb

            with log.step(f"{role.name}-container/{arch}: resolving from the node's set"):
                targets.append(lock_deb(role, node, t.universe, distro))
    return t.repos, targets


def _lock_rpm(distro: Distro, arch: str, roles: list[Role], config: Config, cache: Cache,
              resolved: dict[tuple[str, str], str]) -> tuple[list[LockedRepo], list[LockedTarget]]:
    from imagebuild.rpm.repository import prepare_solvs, read_repo
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
        metadata = prepare_solvs(metadata, cache)
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
        node = LockedTarget(role=role.name, arch=arch, distro=distro.name,
                            requests=tuple(str(p) for p in role.packages), packages=rpm_locked_packages(res),
                            removed=res.removed, family=Family.RPM.value)
        targets.append(node)
        if role.container is not None:
            from imagebuild.app.containers import lock_rpm

            with log.step(f"{role.name}-container/{arch}: resolving from the node's set"):
                targets.append(lock_rpm(role, node, metadata, distro))
    return locked, targets


def rpm_locked_packages(res: RpmResolution) -> tuple[LockedPackage, ...]:
    packages = []
    for p in res.installed:
        r = res.reasons.get(p.name) if p.repo != "base" else None
        packages.append(LockedPackage(
            name=p.name, version=p.evr, arch=p.arch, repo=p.repo, suite="", filename=p.location, size=p.size,
            sha256=p.sha256, required_by=r.parent if r else None,
            dep_type=("base" if p.repo == "base" else (r.dep_type if r and r.dep_type else "requested")),
            relation=r.relation if r else "", depends=res.depends.get(p.name, ())))
    return tuple(packages)


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


def lock_diff(previous: Lock | None, new: Lock) -> TreeDiff:
    """Per role × arch, what re-locking changes in the images (as `bom diff` of the two boms/ would)."""
    from imagebuild.bomdiff import FileDiff, FileStatus, TreeDiff, diff_boms

    def shas(t: LockedTarget | None) -> dict[tuple[str, str, str], str]:
        return {(p.name, p.arch, p.version): p.sha256 for p in t.packages if p.sha256} if t else {}

    old = {t.key: t for t in previous.targets} if previous is not None else {}
    cur = {t.key: t for t in new.targets}
    files = []
    for key in sorted(old.keys() | cur.keys()):
        a, b = old.get(key), cur.get(key)
        family = Family((b or a).family)  # type: ignore[union-attr]
        status = FileStatus.BOTH if a and b else FileStatus.NEW if b else FileStatus.GONE
        # with both sides' sha256: a package rebuilt under the same version shows as integrity drift
        diff = diff_boms(a.bom() if a else [], b.bom() if b else [], family, old_sha=shas(a), new_sha=shas(b))
        files.append(FileDiff(f"{key}.bom", status, diff))
    return TreeDiff(tuple(files))


def refuse_rollback(previous: Lock, new: Lock) -> None:
    """A Release older than the one the lock already records, at the same URL and snapshot, is a
    rollback (a stale mirror or a replay of old signed metadata): refuse it."""
    def instant(date: str) -> datetime | None:
        # apt: the Release's Date; dnf: repomd's revision, a Unix time as createrepo_c and Pulp write it
        if date.isdigit():
            return datetime.fromtimestamp(int(date), UTC)
        from imagebuild.apt.release import parse_date

        return parse_date(date)

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
        from imagebuild.apt.resolver import Resolver

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
    """Write the lock and BOMs that changed, as one commit: SIGINT/SIGTERM are held while the files are renamed
    into place (BOMs first, the lock last), so an interrupted run leaves either the old outputs or the new ones
    (SIGALRM too: `__main__` delivers a signal again with it)."""
    held = {signal.SIGINT, signal.SIGTERM, signal.SIGALRM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        return [rel for rel in sorted(files, key=lambda f: f == LOCK_NAME) if write_atomic(root / rel, files[rel])]
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def lock_bytes(config: Config) -> bytes | None:
    """The lock file in the project, as it is on disk (None: there is none)."""
    try:
        return (config.root / LOCK_NAME).read_bytes()
    except FileNotFoundError:
        return None


def previous_lock(config: Config, data: bytes | None) -> Lock | None:
    """The lock already in the project, of its file's `data` (`lock_bytes`), if it is a readable one (an
    unreadable one is replaced)."""
    if data is None:
        return None
    try:
        return parse_lock(data, config.root / LOCK_NAME)
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
