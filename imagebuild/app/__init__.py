"""The application layer, one module per command: wires config, repositories, resolver, lock and BOM files.

The only layer (besides the CLI) that touches the network, the output files and the terminal. The CLI
imports all of it at start-up, so a module imports at its top only what `lock` needs anyway; anything
else is imported inside the function that uses it.
"""

from imagebuild.app.explain import why, why_reverse
from imagebuild.app.lock import (
    bom_header,
    check,
    did_you_mean,
    lock_diff,
    outputs,
    previous_lock,
    refuse_rollback,
    resolve_all,
    skew_warnings,
    url_from_lock,
    write_outputs,
)
from imagebuild.app.mirroring import archive_priorities, mirror
from imagebuild.app.snapshot import (
    latest_snapshots,
    own_snapshots,
    parse_when,
    rewrite_repo_file,
    set_config_snapshot,
    with_snapshot,
)

__all__ = [
    "archive_priorities",
    "bom_header",
    "check",
    "did_you_mean",
    "latest_snapshots",
    "lock_diff",
    "mirror",
    "outputs",
    "own_snapshots",
    "parse_when",
    "previous_lock",
    "refuse_rollback",
    "resolve_all",
    "rewrite_repo_file",
    "set_config_snapshot",
    "skew_warnings",
    "url_from_lock",
    "why",
    "why_reverse",
    "with_snapshot",
    "write_outputs",
]
