"""examples/ci/: the GitHub Actions workflow is well-formed YAML, its shell steps pass shellcheck (as bash, the
runner's shell), and every imagebuild command and option it uses exists in this CLI."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import click
import pytest
import yaml

from imagebuild.cli import cli

WORKFLOW = Path(__file__).resolve().parents[1] / "examples" / "ci" / "imagebuild.yml"


class _Strict(yaml.SafeLoader):
    """A loader that refuses duplicate keys (GitHub keeps the last one silently)."""


def _no_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:  # type: ignore[type-arg]
    keys = [loader.construct_object(k, deep=deep) for k, _ in node.value]
    dup = {k for k in keys if keys.count(k) > 1}
    if dup:
        raise yaml.constructor.ConstructorError(None, None, f"duplicate keys {dup}", node.start_mark)
    return loader.construct_mapping(node, deep)


_Strict.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def _steps() -> list[dict]:  # type: ignore[type-arg]
    doc = yaml.load(WORKFLOW.read_text(), Loader=_Strict)  # noqa: S506 - a SafeLoader subclass
    return [s for job in doc["jobs"].values() for s in job["steps"]]


def _scripts() -> list[str]:
    # `${{ … }}` is GitHub's, replaced before the shell sees the script: stand in a plain word
    return [re.sub(r"\$\{\{.*?\}\}", "GITHUB_EXPR", s["run"]) for s in _steps() if "run" in s]


def test_workflow_shape() -> None:
    doc = yaml.load(WORKFLOW.read_text(), Loader=_Strict)  # noqa: S506
    assert set(doc["jobs"]) == {"lock-check", "bump", "plan", "build"}
    assert doc["jobs"]["build"]["strategy"]["matrix"]["target"] == "${{ fromJSON(needs.plan.outputs.targets) }}"
    assert len(_scripts()) >= 8


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed (apt-get install shellcheck)")
def test_workflow_scripts_pass_shellcheck(tmp_path: Path) -> None:
    for i, script in enumerate(_scripts()):
        f = tmp_path / f"step{i}.sh"
        f.write_text("#!/bin/bash\nset -eo pipefail\n" + script)
        res = subprocess.run(["shellcheck", "-s", "bash", str(f)], capture_output=True, text=True, check=False)
        assert res.returncode == 0, f"{script}\n{res.stdout}"


def test_workflow_uses_only_commands_and_options_this_cli_has() -> None:
    used = 0
    for script in _scripts():
        text = script.replace("\\\n", " ")
        # the command where a shell runs it: at a line's start, after $( , sudo -E, && or |
        for m in re.finditer(r"(?:^|\$\(|sudo -E |&& |\| )\s*imagebuild((?: --config \S+)?) ([a-z]+)(?: ([a-z]+))?"
                             r"([^\n|;)]*)", text, re.M):
            cmd = cli.commands[m[2]]  # type: ignore[attr-defined]
            rest = m[4]
            if isinstance(cmd, click.Group):
                cmd = cmd.commands[m[3]]
            elif m[3]:
                rest = f" {m[3]}{rest}"
            known = {o for p in cmd.params for o in p.opts}
            for opt in re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", rest):
                assert opt in known, f"imagebuild {m[2]}: no option {opt}"
            used += 1
    assert used >= 10
