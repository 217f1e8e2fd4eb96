"""The command line: parse arguments, call the application layer, map errors to exit codes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from imagebuild import __version__, app, log
from imagebuild.config import CheckLevel, Config, Family, find_config, load_config
from imagebuild.errors import ConfigError, DriftError, ImagebuildError, RepositoryError, ResolutionError
from imagebuild.fetch import redact
from imagebuild.fsutil import WriteError, project_lock, write_atomic
from imagebuild.lockfile import LOCK_NAME, Lock
from imagebuild.snapshots import Provider

if TYPE_CHECKING:
    from imagebuild.bomdiff import BomDiff, TreeDiff


class _State:
    def __init__(self, config: Path | None, debug: bool) -> None:
        self.config_path = config
        self.debug = debug

    def config(self) -> Config:
        return load_config(find_config(self.config_path))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="imagebuild")
@click.option("--config", "config", type=click.Path(path_type=Path, dir_okay=False),
              help="Path to imagebuild.toml (default: ./imagebuild.toml).")
@click.option("-v", "--verbose", count=True, help="Show timed progress steps.")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr (no progress, no summaries).")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, config: Path | None, verbose: int, quiet: bool, debug: bool) -> None:
    """Reproducible HPC/GPU node images and containers from dated apt/dnf snapshots."""
    log.set_verbosity(verbose + (1 if debug else 0), quiet)
    ctx.obj = _State(config, debug)


_FORMATS = click.Choice(["text", "markdown", "json"])


@cli.command()
@click.option("--check", is_flag=True, help="Exit 1 if snapshots.lock is stale against the config; write nothing.")
@click.option("--snapshot", "snapshot_id", metavar="ID",
              help="Re-lock at this snapshot id (YYYYMMDDTHHMMSSZ) and record it in imagebuild.toml.")
@click.option("--dry-run", is_flag=True, help="Resolve and print what would change; write nothing.")
@click.option("--format", "fmt", type=_FORMATS, default="text", show_default=True,
              help="Format of the BOM diff printed against the previous lock.")
@click.option("--no-wait", is_flag=True, help="Fail at once if another imagebuild run is writing in this project.")
@click.pass_obj
def lock(state: _State, check: bool, snapshot_id: str | None, dry_run: bool, fmt: str, no_wait: bool) -> None:
    """Resolve every role × arch and write snapshots.lock and boms/."""
    config = state.config()
    if check:
        if snapshot_id or dry_run:
            raise ConfigError("--check cannot be combined with --snapshot or --dry-run")
        problems = app.check(config)
        for p in problems:
            log.info(f"stale: {p}")
        if problems:
            raise DriftError("the lock is stale", hint="run `imagebuild lock` and commit the result")
        log.info(f"{LOCK_NAME} is current")
        return
    with project_lock(config.root, wait=not no_wait):
        _relock(state.config(), snapshot_id, dry_run, fmt)  # the config as it is once this run may write


@cli.command()
@click.option("--to", "snapshot_id", required=True, metavar="ID", help="The snapshot id to move to.")
@click.option("--dry-run", is_flag=True, help="Resolve and print the BOM diff; write nothing.")
@click.option("--format", "fmt", type=_FORMATS, default="text", show_default=True, help="Format of the BOM diff.")
@click.option("--no-wait", is_flag=True, help="Fail at once if another imagebuild run is writing in this project.")
@click.pass_obj
def bump(state: _State, snapshot_id: str, dry_run: bool, fmt: str, no_wait: bool) -> None:
    """Re-lock against snapshot ID: print the BOM diff per role × arch, then write (same as lock --snapshot)."""
    config = state.config()
    with project_lock(config.root, wait=not no_wait):
        _relock(state.config(), snapshot_id, dry_run, fmt, "--to")


def _checked(config: Config, lock: Lock, strict: bool = False) -> list[str]:
    """Run the coherence checks; print each finding; the errors' messages."""
    from imagebuild import checks

    errors = []
    for f in checks.run(config, lock, strict=strict):
        if f.level is CheckLevel.ERROR:
            errors.append(str(f))
            log.error(str(f))
        else:
            log.warn(str(f))
    return errors


def _relock(config: Config, snapshot_id: str | None, dry_run: bool, fmt: str, option: str = "--snapshot") -> None:
    if snapshot_id is not None:
        old = config.snapshot
        config = app.with_snapshot(config, snapshot_id, option)
        snapshot_id = config.snapshot  # canonical (Pulp's bare form gains its Z)
        log.info(f"snapshot {old} -> {snapshot_id}" if old else f"snapshot {snapshot_id}")
        for note in app.own_snapshots(config):
            log.info(note)
    result = app.resolve_all(config)
    for warning in app.skew_warnings(config, result):
        log.warn(warning)
    errors = _checked(config, result)
    if errors:
        raise ResolutionError(f"{len(errors)} coherence check(s) failed; nothing written",
                              hint="fix the roles, or set the check to \"warn\" or \"off\" in [checks]")
    files = app.outputs(result)
    # a lock that reads as this one is: no rollback, nothing changed (and nothing to parse)
    data = app.lock_bytes(config)
    previous = result if data == files[LOCK_NAME].encode() else app.previous_lock(config, data)
    if previous is not None and previous is not result:
        app.refuse_rollback(previous, result)
    # text only when something changed against an existing lock; json/markdown whenever asked for
    if fmt != "text" or (previous is not None and previous is not result):
        diff = app.lock_diff(previous, result)
        if fmt != "text" or diff.has_changes:
            click.echo(_render_diff(diff, fmt, f"{LOCK_NAME}: what re-locking changes"), nl=False)
    if dry_run:
        log.info("dry run: nothing written")
        return
    # the BOMs and the lock first, the config last: an interruption leaves a lock `--check` calls stale
    changed = app.write_outputs(config.root, files)
    if snapshot_id is not None and app.set_config_snapshot(config.path, snapshot_id):
        log.info(f"{config.path.name}: snapshot = \"{snapshot_id}\"")
    for t in sorted(result.targets, key=lambda t: t.key):
        added = sum(1 for p in t.packages if p.dep_type != "base")
        log.info(f"{t.key}: {len(t.packages)} packages ({added} added to the base)")
    log.info(f"wrote {', '.join(changed)}" if changed else "lock unchanged")


def _render_diff(diff: BomDiff | TreeDiff, fmt: str, title: str) -> str:
    from imagebuild.bomdiff import render_json, render_markdown, render_text

    if fmt == "json":
        return render_json(diff)
    if fmt == "markdown":
        return render_markdown(diff, title)
    return render_text(diff)


@cli.command("check")
@click.option("--strict", is_flag=True, help="Treat warnings as errors (exit 1 on any finding).")
@click.pass_obj
def check_cmd(state: _State, strict: bool) -> None:
    """GPU-stack coherence of the lock (driver, CUDA, kernel modules, arches, containers). Exit 1 on an error."""
    config = state.config()
    from imagebuild.lockfile import read_lock

    errors = _checked(config, read_lock(config.root / LOCK_NAME), strict)
    if errors:
        raise DriftError(f"{len(errors)} coherence check(s) failed", hint="levels per check: [checks] in "
                         f"{config.path.name} (error, warn, off)")
    log.info("coherence checks passed")


@cli.group()
def bom() -> None:
    """Compare BOMs (files written by `imagebuild lock`, or `rpm -qa`/`dpkg-query` lists)."""


@bom.command("diff")
@click.argument("old")
@click.argument("new")
@click.option("--format", "fmt", type=_FORMATS, default="text", show_default=True)
@click.option("--family", type=click.Choice(["deb", "rpm"]), default=None,
              help="Version ordering to use (default: detected from the BOMs).")
@click.option("--fail-on", "fail_on", multiple=True, metavar="CLASSES",
              help="Exit 1 only for these classes (comma-separated: added, removed, upgraded, downgraded, "
                   "arch-changed, integrity, all). Default: any change.")
@click.option("--allow", "allows", multiple=True, metavar="PATTERN",
              help="Accept matching changes: a name or purl glob, PATTERN[;reason=TEXT][;expires=YYYY-MM-DD]"
                   "[;classes=a,b]. Repeatable.")
@click.option("--allow-file", "allow_file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="A TOML file of [[allow]] pattern/reason/expires/classes rules.")
@click.option("--os", "os_id", default=None, metavar="ID-VERSION",
              help="The operating system for purl rules when the BOMs do not say (e.g. debian-12).")
def bom_diff(old: str, new: str, fmt: str, family: str | None, fail_on: tuple[str, ...], allows: tuple[str, ...],
             allow_file: Path | None, os_id: str | None) -> None:
    """What changes from OLD to NEW: BOM files, boms/ directories, lock files, project directories or git
    revisions (main, HEAD~1, origin/main:examples/gpu-cluster; read with git, no checkout). Exit 1 when a change
    the gate fails on is found (without --fail-on: any change)."""
    from datetime import UTC, datetime

    from imagebuild.bomdiff import gate, parse_allow, parse_classes, read_allow_file, render, run_diff

    classes = parse_classes(fail_on) if fail_on else parse_classes("all")
    rules = [parse_allow(a) for a in allows] + (read_allow_file(allow_file) if allow_file is not None else [])
    diff = run_diff(old, new, family=Family(family) if family else None, cwd=Path.cwd(), os=os_id)
    result = gate(diff, classes, rules, datetime.now(UTC).date())
    gated = bool(fail_on or rules)
    click.echo(render(diff, fmt, f"BOM diff {old} -> {new}", color=fmt == "text" and sys.stdout.isatty(),
                      gate=result if gated else None), nl=False)
    if gated:
        for line in result.report():
            click.echo(line, err=True)
    if result.failed:
        sys.exit(DriftError.exit_code)


@cli.group()
def snapshot() -> None:
    """Dated snapshots of the configured repositories."""


@snapshot.command("latest")
@click.option("--repo", "repo_name", default=None, help="Only this repo (default: every repo with a provider).")
@click.option("--at", "at_s", default=None, metavar="WHEN",
              help="Newest snapshot at or before this UTC time: an id, YYYY-MM-DD or "
                   "YYYY-MM-DDTHH:MM:SSZ (default: now).")
@click.pass_obj
def snapshot_latest(state: _State, repo_name: str | None, at_s: str | None) -> None:
    """Print the newest snapshot id each repo's provider offers (debian, ubuntu, pulp), as `distro repo ID`."""
    for distro, repo, found in app.latest_snapshots(state.config(), repo_name, app.parse_when(at_s)):
        click.echo(f"{distro} {repo} {found}")


@cli.group()
def repo() -> None:
    """Work on existing apt/dnf repo files."""


@repo.command("rewrite")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--snapshot", "snapshot_id", required=True, metavar="ID", help="Snapshot id (YYYYMMDDTHHMMSSZ).")
@click.option("--provider", type=click.Choice([p.value for p in Provider]), default=None,
              help="How URLs map onto the snapshot (default: debian for apt files, pulp for .repo files).")
@click.option("--service", default=None, metavar="URL", help="A snapshot service mirror (debian/ubuntu providers).")
@click.option("--in-place", "in_place", is_flag=True, help="Rewrite the files (atomically) instead of printing them.")
@click.option("--stdout", "to_stdout", is_flag=True, help="Print the rewritten files (the default).")
@click.option("--strip-credentials/--keep-credentials", default=True, show_default=True,
              help="Remove user:pass@ and username/password (files that ship in images must not carry them); "
                   "--keep-credentials only with --in-place, never printed.")
@click.option("--disable-third-party", is_flag=True,
              help="apt: mark repos the provider does not cover `Snapshot: disable`.")
@click.option("--baseurl", "baseurls", multiple=True, metavar="ID=URL",
              help="dnf: the URL to snapshot for section ID (sections on a mirrorlist/metalink need one).")
def repo_rewrite(files: tuple[Path, ...], snapshot_id: str, provider: str | None, service: str | None,
                 in_place: bool, to_stdout: bool, strip_credentials: bool, disable_third_party: bool,
                 baseurls: tuple[str, ...]) -> None:
    """Point apt .list/.sources and dnf .repo FILES at a snapshot; everything else is kept byte for byte."""
    if in_place and to_stdout:
        raise ConfigError("--in-place and --stdout exclude each other")
    if not strip_credentials and not in_place:
        raise ConfigError("--keep-credentials would print repo passwords", hint="use it with --in-place")
    by_id = {}
    for item in baseurls:
        rid, sep, url = item.partition("=")
        if not sep or not rid or not url:
            raise ConfigError(f"--baseurl {redact(item)!r}: expected ID=URL", hint="e.g. --baseurl epel=https://…/epel/9/")
        by_id[rid] = url
    # every file is rewritten before any is written: one bad file leaves all of them untouched
    results = [app.rewrite_repo_file(f, snapshot_id, Provider(provider) if provider else None, service=service,
                                     strip_credentials=strip_credentials, disable_third_party=disable_third_party,
                                     baseurls=by_id) for f in files]
    for path, (text, notes) in zip(files, results, strict=True):
        for note in notes:
            log.info(note)
        if in_place:
            log.info(f"{path}: {'rewritten' if write_atomic(path, text) else 'unchanged'}")
        else:
            if len(files) > 1:
                click.echo(f"# ==> {path} <==")
            click.echo(text, nl=False)


@cli.command("mirror")
@click.option("--role", "roles", multiple=True, help="Only this role's packages (repeatable; default: all roles).")
@click.option("--repo", "repos", multiple=True, help="Only packages from this repo, e.g. cuda (repeatable).")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Where to put blobs/ and repos/ (default: imagebuild-mirror/ next to the config).")
@click.pass_obj
def mirror_cmd(state: _State, roles: tuple[str, ...], repos: tuple[str, ...], out: Path | None) -> None:
    """Download exactly the locked package files, verify each against the lock, and write local repos.

    The repo of each distro holds exactly the selected roles' packages (re-running with other roles
    replaces it); blobs/ keeps every file ever mirrored, by sha256."""
    config = state.config()
    result = app.mirror(config, roles, repos, out or config.root / "imagebuild-mirror")
    for r in result.repos:
        click.echo(f"{r.distro}: {r.packages} packages in {r.path} ({r.family.value} repo)")
    log.info(f"{result.fetched} files downloaded, {result.reused} already there")


@cli.command()
@click.argument("package")
@click.option("--role", required=True, help="Role whose image to explain.")
@click.option("--arch", default=None, help="Architecture (default: all locked arches).")
@click.option("--container", is_flag=True, help="Explain the role's container (<role>-container) instead.")
@click.option("--reverse", is_flag=True, help="What would leave the image if PACKAGE were dropped from the requests.")
@click.pass_obj
def why(state: _State, package: str, role: str, arch: str | None, container: bool, reverse: bool) -> None:
    """Show the dependency chain that pulled PACKAGE into ROLE's image (from the lock; no network)."""
    explain = app.why_reverse if reverse else app.why
    for line in explain(state.config(), package, role, arch, container):
        click.echo(line)


@cli.command("bake")
@click.option("--role", "roles", multiple=True, help="Only this role (repeatable; default: every role).")
@click.option("--arch", default=None, help="Only this architecture (default: every locked arch).")
@click.option("--target", "target", type=click.Choice(["packer", "rootfs", "docker", "apptainer", "all"]),
              default="all", show_default=True,
              help="packer: templates (+ bundles); rootfs: root filesystem tarballs without Packer; docker, "
                   "apptainer: the role's container (containers/<role>/).")
@click.option("--build", is_flag=True, help="Also run the build (packer build / mmdebstrap / dnf --installroot).")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Where packer/ and images/ go (default: next to the config).")
@click.pass_obj
def bake_cmd(state: _State, roles: tuple[str, ...], arch: str | None, target: str, build: bool,
             out: Path | None) -> None:
    """Render Packer templates and provisioning bundles from the lock (never re-resolving); --build builds."""
    from imagebuild import bake

    result = bake.bake(state.config(), roles, arch, bake.Target(target), build, out)
    for rel in result.written:
        log.debug(f"wrote {rel}")
    log.info(f"{len(result.written)} files written, {result.unchanged} unchanged")
    for rel in result.built:
        click.echo(f"built {rel}")


@cli.command("verify")
@click.option("--role", required=True, help="Role whose locked BOM to compare with.")
@click.option("--arch", required=True, help="Architecture of the image.")
@click.option("--container", is_flag=True, help="Compare with the role's container BOM (<role>-container).")
@click.option("--rootfs", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None,
              help="A built root filesystem tarball (its dpkg status / rpmdb is read).")
@click.option("--image", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None,
              help="A container image archive (OCI archive or docker-archive, as buildah push / podman save write).")
@click.option("--installed", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None,
              help="A captured `dpkg-query -W -f …` / `rpm -qa --qf …` list.")
@click.pass_obj
def verify_cmd(state: _State, role: str, arch: str, container: bool, rootfs: Path | None, image: Path | None,
               installed: Path | None) -> None:
    """Does a built image hold exactly the lock's BOM? Exit 0 equal, 1 drift (listed)."""
    from imagebuild import bake, verify
    from imagebuild.bomdiff import render_text

    given = [p for p in (rootfs, image, installed) if p is not None]
    if len(given) != 1:
        raise ConfigError("give exactly one of --rootfs TAR, --image OCI_TAR or --installed FILE")
    config = state.config()
    lock = bake.fresh_lock(config)
    target = lock.target(role, arch, container=container)
    if target is None:
        what = f"{role}-container-{arch}" if container else f"{role}-{arch}"
        hint = ("the role has no [roles.R.container] table" if container and role in config.roles
                and config.roles[role].container is None else "check --role/--arch, or run `imagebuild lock`")
        raise DriftError(f"{LOCK_NAME} has no {what}", hint=hint)
    family = Family(target.family)
    if rootfs is not None:
        actual = verify.installed_from_rootfs(rootfs, family)
    elif image is not None:
        actual = verify.installed_from_image(image, family, arch)
    else:
        assert installed is not None  # exactly one of the three, checked above
        actual = verify.installed_from_list(installed)
    diff = verify.compare(target.bom(), actual, family)
    if verify.has_drift(diff):
        click.echo(render_text(diff), nl=False)
        raise DriftError(f"{given[0]}: the installed packages differ from the lock's BOM of {target.key}")
    click.echo(f"{target.key}: {len(actual)} packages, equal to the lock")


@cli.command("sbom")
@click.option("--role", required=True, help="Role whose image (or container) to describe.")
@click.option("--arch", required=True, help="Architecture of the image.")
@click.option("--container", is_flag=True, help="The role's container (<role>-container) instead of its node image.")
@click.option("--format", "fmt", type=click.Choice(["cyclonedx", "spdx"]), required=True,
              help="CycloneDX 1.6 JSON or SPDX 2.3 JSON.")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write it here (atomically) instead of standard output.")
@click.pass_obj
def sbom_cmd(state: _State, role: str, arch: str, container: bool, fmt: str, output: Path | None) -> None:
    """The SBOM of a locked image, from the lock (no network): the same bytes for the same lock."""
    from imagebuild import bake, sbom

    config = state.config()
    lock = bake.fresh_lock(config)
    target = lock.target(role, arch, container=container)
    if target is None:
        what = f"{role}-container-{arch}" if container else f"{role}-{arch}"
        raise DriftError(f"{LOCK_NAME} has no {what}", hint="check --role/--arch, or run `imagebuild lock`")
    text = sbom.render_sbom(config, lock, target, fmt, bake.lock_digest(config))
    if output is None:
        click.echo(text, nl=False)
    else:
        write_atomic(output, text)
        log.info(f"wrote {output}")


def main(argv: list[str] | None = None) -> Any:
    try:
        return cli.main(args=argv, prog_name="imagebuild", standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(2)
    except click.exceptions.Abort:
        sys.exit(130)
    except WriteError as e:
        print(f"imagebuild: error: {e.strerror}", file=sys.stderr)
        print("  hint: nothing else was written: the outputs already there are unchanged", file=sys.stderr)
        sys.exit(RepositoryError.exit_code)
    except ImagebuildError as e:
        if "--debug" in (argv if argv is not None else sys.argv):
            import traceback  # only here: a lock does not pay for its import

            traceback.print_exc()
        print(f"imagebuild: error: {e.message}", file=sys.stderr)
        if isinstance(e, ResolutionError) and e.chain:
            for link in e.chain:
                print(f"  {link}", file=sys.stderr)
        if e.hint:
            print(f"  hint: {e.hint}", file=sys.stderr)
        sys.exit(e.exit_code)
