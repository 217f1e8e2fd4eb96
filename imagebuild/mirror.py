"""`imagebuild mirror`: the locked package files, verified and kept, as local repos a build can use.

Vendor repos without snapshots (CUDA, DOCA) delete old files; a lock that names them would stop being
buildable. `mirror` downloads exactly the files the lock names, checks each one's size and sha256 against
the lock, stores it content-addressed, and writes one local repository per distro:

    <out>/blobs/sha256/<hex>                 every file, by content (shared across distros and runs)
    <out>/repos/<distro>/pool/<repo>/<file>  hard links to the blobs (copies across file systems)
    <out>/repos/<distro>/Packages{,.gz} + Release          deb: a flat repo, `deb [trusted=yes] file:DIR ./`
    <out>/repos/<distro>/repodata/                          rpm: `createrepo_c` metadata, `baseurl=file://DIR`

Nothing is changed under `<out>` until every file has been fetched and verified and the repos built in a
staging directory next to it; a failure leaves `<out>` as it was and no temporary files behind. Output is
deterministic: stanzas sorted, gzip without timestamps, the Release `Date` and the repomd revision taken
from the lock, package files with a fixed mtime (createrepo_c records it).

The URL in the lock is credential-free; the caller passes `repo_url` to map a locked repo to the URL to
download from (with credentials). Those URLs only reach the download function, whose messages are redacted.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import posixpath
import re
import shutil
import subprocess
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import BinaryIO

from imagebuild import debversion, log
from imagebuild.compression import decompress
from imagebuild.config import Family
from imagebuild.errors import ConfigError, RepositoryError
from imagebuild.fetch import download as default_download
from imagebuild.fetch import metered
from imagebuild.fsutil import write_atomic
from imagebuild.lockfile import STUB_REPO, Lock, LockedPackage, LockedRepo, LockedTarget, repo_path

# (url, dest, sha256, size): `dest` appears only holding a file of that size and sha256, else RepositoryError
Downloader = Callable[[str, Path, str, int], None]
RepoUrl = Callable[[LockedRepo], str]

#: mtime of every mirrored package file (createrepo_c writes it into primary.xml): 2000-01-01T00:00:00Z
FIXED_MTIME = 946684800

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+~:%-]*$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_MAX_CONTROL = 16 << 20  # a .deb's control file is kilobytes
_MAX_CONTROL_TAR = 64 << 20


@dataclass(frozen=True)
class MirrorItem:
    """One file to mirror: where it comes from and where it goes in its distro's repo."""

    distro: str
    family: Family
    package: LockedPackage
    source: LockedRepo
    relpath: str  # inside the distro's repo dir: pool/<repo>/<file name>

    @property
    def what(self) -> str:
        p = self.package
        return f"{p.name} {p.version} {p.arch} (repo {p.repo!r})"


@dataclass(frozen=True)
class MirroredRepo:
    """One repo `mirror` wrote."""

    distro: str
    family: Family
    path: Path  # the repo root: a flat apt repo dir, or the dir holding repodata/
    packages: int


@dataclass(frozen=True)
class MirrorResult:
    """What `mirror` did: the repos it wrote, and how many files it fetched or reused."""

    root: Path
    repos: tuple[MirroredRepo, ...]
    fetched: int  # files downloaded in this run
    reused: int  # files already in <out>/blobs (verified again)


def blob_path(out: Path, sha256: str) -> Path:
    return out / "blobs" / "sha256" / sha256


def repo_dir(out: Path, distro: str) -> Path:
    return out / "repos" / distro


# -- planning (no I/O) ---------------------------------------------------------------------------------


def _family_of(filename: str) -> Family | None:
    if filename.endswith(".deb"):
        return Family.DEB
    if filename.endswith(".rpm"):
        return Family.RPM
    return None


def plan(lock: Lock, targets: Iterable[LockedTarget], repos: Collection[str] | None = None) -> tuple[MirrorItem, ...]:
    """The files to mirror for `targets` (base packages excluded), optionally only from the named repos."""
    by_key = {(r.distro, r.arch, r.name, r.suite): r for r in lock.repos}
    items: dict[tuple[str, str], MirrorItem] = {}
    families: dict[str, Family] = {}
    for t in targets:
        if not _SAFE_NAME.fullmatch(t.distro):
            raise ConfigError(f"distro name {t.distro!r} cannot be a directory name", hint="rename the distro")
        for p in t.packages:
            if p.repo in ("base", STUB_REPO) or (repos is not None and p.repo not in repos):
                continue  # a container's stub is generated from the lock by bake, not downloaded
            what = f"{p.name} {p.version} {p.arch} (role {t.role}, repo {p.repo!r})"
            source = by_key.get((t.distro, t.arch, p.repo, p.suite))
            if source is None:
                raise ConfigError(f"lock: {what} names repo {p.repo!r} {p.suite} ({t.arch}), which the lock lacks",
                                  hint="re-run `imagebuild lock`")
            path = repo_path(p.filename)
            if path is None and p.filename:
                raise ConfigError(f"lock: {what} has a file name outside its repo: {p.filename!r}",
                                  hint="the repo's index is damaged or hostile; re-lock against a good one")
            name = posixpath.basename(path or "")
            family = _family_of(name)
            if family is None or not _SAFE_NAME.fullmatch(name) or not _HEX64.fullmatch(p.sha256):
                raise ConfigError(f"lock: {what} has no usable file ({p.filename!r}, sha256 {p.sha256!r})",
                                  hint="re-run `imagebuild lock`")
            if families.setdefault(t.distro, family) is not family:
                raise ConfigError(f"lock: distro {t.distro!r} mixes .deb and .rpm files",
                                  hint="a distro is either deb or rpm; re-run `imagebuild lock`")
            if not _SAFE_NAME.fullmatch(p.repo):
                raise ConfigError(f"lock: repo name {p.repo!r} cannot be a directory name", hint="rename the repo")
            rel = f"pool/{p.repo}/{name}"
            item = MirrorItem(t.distro, family, p, source, rel)
            seen = items.setdefault((t.distro, rel), item)
            if seen.package.sha256 != p.sha256 or seen.package.size != p.size:
                raise RepositoryError(
                    f"lock: {rel} of distro {t.distro!r} is locked with two contents "
                    f"(sha256 {seen.package.sha256} and {p.sha256})",
                    hint="the repo served different files under one name between locks; re-run `imagebuild lock`")
    return tuple(items[k] for k in sorted(items))


def download_url(item: MirrorItem, repo_url: RepoUrl) -> str:
    path = repo_path(item.package.filename)
    if path is None:
        raise ConfigError(f"lock: {item.what} has a file name outside its repo: {item.package.filename!r}",
                          hint="the repo's index is damaged or hostile; re-lock against a good one")
    return f"{repo_url(item.source).rstrip('/')}/{path}"


# -- deb control files ---------------------------------------------------------------------------------


def deb_control(source: bytes | BinaryIO, what: str = "package") -> str:
    """The `control` file of a .deb (an ar archive holding control.tar[.gz|.xz|.zst]), as text. `source` is the
    .deb's bytes or an open file: members before control.tar are skipped with a seek, never read (a CUDA .deb is
    gigabytes; its control.tar is kilobytes)."""
    f = io.BytesIO(source) if isinstance(source, bytes) else source
    if f.read(8) != b"!<arch>\n":
        raise RepositoryError(f"{what}: not a .deb (no ar header)")
    while len(header := f.read(60)) == 60:
        name = header[:16].decode("ascii", errors="replace").strip().rstrip("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError:
            raise RepositoryError(f"{what}: corrupt ar member header") from None
        if not name.startswith("control.tar"):
            f.seek(size + (size & 1), io.SEEK_CUR)
            continue
        if size > _MAX_CONTROL_TAR:
            raise RepositoryError(f"{what}: {name} has {size} bytes (a control.tar has kilobytes)")
        body = f.read(size)
        if name.endswith(".zst"):
            body = decompress(f"{what}: {name}", body)
        try:
            with tarfile.open(fileobj=io.BytesIO(body), mode="r:*") as tar:
                for member in tar.getmembers():
                    if member.name in ("./control", "control") and member.isfile():
                        if member.size > _MAX_CONTROL:
                            raise RepositoryError(f"{what}: {name}: the control file has {member.size} bytes")
                        extracted = tar.extractfile(member)
                        if extracted is not None:
                            return extracted.read().decode("utf-8")
        except (tarfile.TarError, EOFError, OSError, UnicodeDecodeError, ValueError) as e:
            raise RepositoryError(f"{what}: unreadable {name}: {e}") from None
        raise RepositoryError(f"{what}: {name} holds no control file")
    raise RepositoryError(f"{what}: no control.tar member")


def _control_fields(control: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in control.splitlines():
        if line[:1] in (" ", "\t") or ":" not in line:
            continue
        k, v = line.split(":", 1)
        fields[k.strip()] = v.strip()
    return fields


def packages_stanza(control: str, filename: str, size: int, sha256: str) -> str:
    """A Packages stanza: the control fields as the package ships them, then Filename, Size and SHA256."""
    body = "\n".join(ln for ln in control.strip("\n").splitlines() if ln.strip())
    return f"{body}\nFilename: {filename}\nSize: {size}\nSHA256: {sha256}\n"


def render_release(files: dict[str, bytes], architectures: Iterable[str], date: str | None, distro: str) -> str:
    """A flat repo's Release: what it is, and the SHA256 of each index.

    Suite and Codename are the distro's name in imagebuild.toml, so tools that select by suite
    (`mmdebstrap … bookworm`, apt pins `release n=bookworm`) find the packages.
    """
    lines = ["Origin: imagebuild", f"Label: imagebuild mirror {distro}", f"Suite: {distro}", f"Codename: {distro}"]
    if date:
        lines.append(f"Date: {date}")
    lines.append(f"Architectures: {' '.join(sorted(set(architectures)))}")
    lines.append("SHA256:")
    lines += [f" {hashlib.sha256(data).hexdigest()} {len(data):>16} {name}" for name, data in sorted(files.items())]
    return "\n".join(lines) + "\n"


def _latest_release_date(sources: Iterable[LockedRepo]) -> str | None:
    dates = []
    for r in sources:
        try:
            dates.append(parsedate_to_datetime(r.date))
        except (TypeError, ValueError, IndexError, OverflowError):
            continue
    if not dates:
        return None
    return format_datetime(max(dates), usegmt=True)


Priorities = Mapping[tuple[str, str, str], str]  # (name, version, arch) -> the archive's Priority


def _with_priority(control: str, priority: str) -> str:
    """The control text with the archive's Priority (its override file can differ from what the .deb says;
    `mmdebstrap --variant=minbase` selects by it)."""
    lines = [ln for ln in control.splitlines() if not ln.startswith("Priority:")]
    at = next((i + 1 for i, ln in enumerate(lines) if ln.startswith("Version:")), len(lines))
    return "\n".join([*lines[:at], f"Priority: {priority}", *lines[at:]]) + "\n"


def _write_deb_repo(items: list[MirrorItem], blobs: dict[str, Path], dest: Path, priorities: Priorities) -> None:
    stanzas = []
    for item in items:
        p = item.package
        with blobs[p.sha256].open("rb") as f:
            control = deb_control(f, item.what)
        if (override := priorities.get((p.name, p.version, p.arch))) is not None:
            control = _with_priority(control, override)
        fields = _control_fields(control)
        got = (fields.get("Package"), fields.get("Version"), fields.get("Architecture"))
        if got != (p.name, p.version, p.arch):
            raise RepositoryError(f"{item.what}: the file {item.relpath} is {' '.join(map(str, got))}",
                                  hint="the repo's index and its files disagree; re-lock against a consistent repo")
        key = (p.name, p.arch, debversion.version_key(p.version))
        stanzas.append((key, packages_stanza(control, item.relpath, p.size, p.sha256)))
    stanzas.sort(key=lambda s: s[0])
    packages = "\n".join(s for _, s in stanzas).encode()
    packages_gz = gzip.compress(packages, compresslevel=9, mtime=0)
    write_atomic(dest / "Packages", packages)
    write_atomic(dest / "Packages.gz", packages_gz)
    release = render_release({"Packages": packages, "Packages.gz": packages_gz},
                             {i.package.arch for i in items}, _latest_release_date({i.source for i in items}),
                             items[0].distro)
    write_atomic(dest / "Release", release)


def _write_rpm_repo(items: list[MirrorItem], dest: Path) -> None:
    tool = shutil.which("createrepo_c")
    if tool is None:
        raise RepositoryError(f"cannot write the rpm repo of distro {items[0].distro!r}: createrepo_c is not installed",
                              hint="install createrepo-c (apt-get install createrepo-c, or pip install createrepo-c)")
    revisions = [r.date for r in {i.source for i in items} if r.date.isdigit()]
    revision = max(revisions, key=int) if revisions else str(FIXED_MTIME)
    cmd = [tool, "--no-database", "--general-compress-type=gz", "--workers=1", f"--revision={revision}",
           "--set-timestamp-to-revision", "--quiet", str(dest)]
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"}, check=False)
    if res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
        raise RepositoryError(f"createrepo_c failed for distro {items[0].distro!r} (exit {res.returncode}): "
                              + " / ".join(tail))
    _check_primary(items, dest)


def _check_primary(items: list[MirrorItem], dest: Path) -> None:
    """Every file must be the package the lock names (as createrepo_c read it from the rpm header)."""
    ns = {"r": "http://linux.duke.edu/metadata/repo", "c": "http://linux.duke.edu/metadata/common"}
    repomd = ET.parse(dest / "repodata" / "repomd.xml").getroot()
    loc = repomd.find("r:data[@type='primary']/r:location", ns)
    if loc is None:
        raise RepositoryError(f"createrepo_c wrote no primary metadata in {dest}")
    seen: dict[str, tuple[str, str, str]] = {}
    root = ET.fromstring(gzip.decompress((dest / loc.get("href", "")).read_bytes()))
    for pkg in root.findall("c:package", ns):
        v, href = pkg.find("c:version", ns), pkg.find("c:location", ns)
        if v is None or href is None:
            continue
        epoch = v.get("epoch", "0")
        evr = (f"{epoch}:" if epoch != "0" else "") + f"{v.get('ver')}-{v.get('rel')}"
        seen[href.get("href", "")] = (pkg.findtext("c:name", "", ns), evr, pkg.findtext("c:arch", "", ns))
    for item in items:
        p = item.package
        got = seen.get(item.relpath)
        if got != (p.name, p.version, p.arch):
            raise RepositoryError(f"{item.what}: the file {item.relpath} is {' '.join(got or ('unreadable',))}",
                                  hint="the repo's metadata and its files disagree; re-lock against a consistent repo")


# -- the run -------------------------------------------------------------------------------------------


def _download(url: str, dest: Path, sha256: str, size: int) -> None:
    default_download(url, dest, sha256=sha256, size=size)


def _existing_blob(path: Path, sha256: str) -> bool:
    try:
        h = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError:
        return False
    return h.hexdigest() == sha256


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
        os.utime(dst, (FIXED_MTIME, FIXED_MTIME))


def mirror(lock: Lock, targets: Iterable[LockedTarget], out: Path, *, repo_url: RepoUrl = lambda r: r.url,
           download: Downloader = _download, repos: Collection[str] | None = None,
           priorities: Priorities | None = None) -> MirrorResult:
    """Mirror the files of `targets` (optionally only those of the named repos) into `out`. `priorities`:
    the archive's Priority per deb package, where it is known (else the .deb's own is used)."""
    items = plan(lock, targets, repos)
    if not items:
        raise ConfigError("nothing to mirror: the selected roles hold only base packages"
                          + (f" or none from {', '.join(sorted(repos))}" if repos is not None else ""),
                          hint="check --role and the repo names")
    out = out.absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
    try:
        blobs: dict[str, Path] = {}  # sha256 -> a verified file (in <out> or staged)
        staged: list[str] = []
        todo: dict[str, MirrorItem] = {}  # sha256 -> the item to download it for
        for item in items:
            sha = item.package.sha256
            if sha in blobs or sha in todo:
                continue
            existing = blob_path(out, sha)
            if _existing_blob(existing, sha):
                blobs[sha] = existing
            else:
                todo[sha] = item
        reused = len(blobs)
        with log.progress("mirror", len(todo), sum(i.package.size for i in todo.values())) as meter, \
                metered(meter.advance):
            for sha, item in todo.items():
                url = download_url(item, repo_url)
                path = blob_path(staging, sha)
                try:  # streamed to a file while hashed, never whole in memory (a CUDA .deb is gigabytes)
                    download(url, path, sha, item.package.size)
                except RepositoryError as e:
                    raise RepositoryError(f"{item.what}: {e.message}", hint=e.hint or
                                          "the file changed after locking: restore it from an earlier mirror, or "
                                          "re-lock on purpose") from None
                os.utime(path, (FIXED_MTIME, FIXED_MTIME))
                blobs[sha] = path
                staged.append(sha)
                meter.file_done()
        fetched = len(staged)

        by_distro: dict[str, list[MirrorItem]] = {}
        for item in items:
            by_distro.setdefault(item.distro, []).append(item)
        built: list[MirroredRepo] = []
        for distro, group in sorted(by_distro.items()):
            dest = repo_dir(staging, distro)
            for item in group:
                _link(blobs[item.package.sha256], dest / item.relpath)
            if group[0].family is Family.DEB:
                _write_deb_repo(group, blobs, dest, priorities or {})
            else:
                _write_rpm_repo(group, dest)
            built.append(MirroredRepo(distro, group[0].family, repo_dir(out, distro), len(group)))

        # everything is verified and built: move it into place
        for sha in staged:
            target = blob_path(out, sha)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(blob_path(staging, sha), target)
        for repo in built:
            repo.path.parent.mkdir(parents=True, exist_ok=True)
            if repo.path.exists():
                os.replace(repo.path, staging / f"old-{repo.distro}")
            os.replace(repo_dir(staging, repo.distro), repo.path)
        return MirrorResult(out, tuple(built), fetched, reused)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
