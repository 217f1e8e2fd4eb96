"""The application layer, one module per command: wires config, repositories, resolver, lock and BOM files.

The only layer (besides the CLI) that touches the network, the output files and the terminal. A command imports
only the modules it uses: `app.NAME` imports the module that defines NAME when it is first asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what the type checker sees; at run time __getattr__ imports the module
    from imagebuild.app.explain import why, why_reverse
    from imagebuild.app.lock import (
        bom_header,
        check,
        did_you_mean,
        lock_bytes,
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

_MODULES = {
    "explain": ("why", "why_reverse"),
    "lock": ("bom_header", "check", "did_you_mean", "lock_bytes", "lock_diff", "outputs", "previous_lock",
             "refuse_rollback", "resolve_all", "skew_warnings", "url_from_lock", "write_outputs"),
    "mirroring": ("archive_priorities", "mirror"),
    "snapshot": ("latest_snapshots", "own_snapshots", "parse_when", "rewrite_repo_file", "set_config_snapshot",
                 "with_snapshot"),
}
_WHERE = {name: module for module, names in _MODULES.items() for name in names}
__all__ = [
    "archive_priorities", "bom_header", "check", "did_you_mean", "latest_snapshots", "lock_bytes", "lock_diff",
    "mirror", "outputs", "own_snapshots", "parse_when", "previous_lock", "refuse_rollback", "resolve_all",
    "rewrite_repo_file", "set_config_snapshot", "skew_warnings", "url_from_lock", "why", "why_reverse",
    "with_snapshot", "write_outputs",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
