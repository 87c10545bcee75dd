"""The bash completion script, generated from the parser, completes what bash's own completion machinery asks."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PROVISION = Path(sys.executable).parent / "provision"


def complete(tmp_path: Path, *words: str) -> list[str]:
    script = tmp_path / "completion.bash"
    script.write_text(subprocess.run([str(PROVISION), "completion", "bash"], capture_output=True, text=True,
                                     check=True).stdout)
    quoted = " ".join(f"'{w}'" for w in words)
    probe = f'source {script}; COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; _provision_complete; ' \
            'printf "%s\\n" "${COMPREPLY[@]}"'
    result = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True, cwd=tmp_path)
    return result.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_commands_options_and_paths_complete(tmp_path: Path) -> None:
    assert {"up", "upgrade"} <= set(complete(tmp_path, "provision", "up"))
    assert complete(tmp_path, "provision", "up", "--inv") == ["--inventory"]
    assert "--use-context" in complete(tmp_path, "provision", "up", "--use")
    assert complete(tmp_path, "provision", "completion", "b") == ["bash"]
    (tmp_path / "edge.yml").touch()
    assert complete(tmp_path, "provision", "up", "--inventory", "ed") == ["edge.yml"]
