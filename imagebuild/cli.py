"""The command line: parse arguments, call the application layer, map errors to exit codes."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Any

import click

from imagebuild import __version__, app, log
from imagebuild.config import Config, find_config, load_config
from imagebuild.errors import DriftError, ImagebuildError, ResolutionError
from imagebuild.lockfile import LOCK_NAME


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
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, config: Path | None, verbose: int, debug: bool) -> None:
    """Reproducible HPC/GPU node images and containers from dated apt/dnf snapshots."""
    log.set_verbosity(verbose + (1 if debug else 0))
    ctx.obj = _State(config, debug)


@cli.command()
@click.option("--check", is_flag=True, help="Exit 1 if snapshots.lock is stale against the config; write nothing.")
@click.pass_obj
def lock(state: _State, check: bool) -> None:
    """Resolve every role × arch and write snapshots.lock and boms/."""
    config = state.config()
    if check:
        problems = app.check(config)
        for p in problems:
            log.info(f"stale: {p}")
        if problems:
            raise DriftError("the lock is stale", hint="run `imagebuild lock` and commit the result")
        log.info(f"{LOCK_NAME} is current")
        return
    result = app.resolve_all(config)
    previous = app.previous_lock(config)
    if previous is not None:
        app.refuse_rollback(previous, result)
    changed = app.write_outputs(config.root, app.outputs(result))
    for t in sorted(result.targets, key=lambda t: t.key):
        added = sum(1 for p in t.packages if p.dep_type != "base")
        log.info(f"{t.key}: {len(t.packages)} packages ({added} added to the base)")
    log.info(f"wrote {', '.join(changed)}" if changed else "lock unchanged")


@cli.command()
@click.argument("package")
@click.option("--role", required=True, help="Role whose image to explain.")
@click.option("--arch", default=None, help="Architecture (default: all locked arches).")
@click.pass_obj
def why(state: _State, package: str, role: str, arch: str | None) -> None:
    """Show the dependency chain that pulled PACKAGE into ROLE's image (from the lock; no network)."""
    for line in app.why(state.config(), package, role, arch):
        click.echo(line)


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
    except ImagebuildError as e:
        if "--debug" in (argv if argv is not None else sys.argv):
            traceback.print_exc()
        print(f"imagebuild: error: {e.message}", file=sys.stderr)
        if isinstance(e, ResolutionError) and e.chain:
            for link in e.chain:
                print(f"  {link}", file=sys.stderr)
        if e.hint:
            print(f"  hint: {e.hint}", file=sys.stderr)
        sys.exit(e.exit_code)
