"""scripts/newest-env where it cannot run: it says why and exits 3, which scripts/test reports
as a skipped run (an error under CI) instead of a failure."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "newest-env"
CANNOT_RUN = 3


def _run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=60, env=env, check=False, cwd=REPO_ROOT
    )


def test_not_built_yet_says_so(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("as a user the not-root message comes first (the next test)")
    env = {**os.environ, "SBMS_NEWEST_ROOT": str(tmp_path / "none")}
    result = _run(str(SCRIPT), "run", "true", env=env)
    assert result.returncode == CANNOT_RUN
    assert "cannot run here: not built yet (scripts/newest-env setup)" in result.stderr
    assert not (tmp_path / "none").exists()


def test_not_root_says_so_and_touches_nothing() -> None:
    setpriv = shutil.which("setpriv")
    if os.geteuid() == 0 and setpriv is None:
        pytest.skip("setpriv (util-linux) is needed to drop root here")
    prefix = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"] if setpriv else []
    if os.geteuid() != 0:
        prefix = []
    # A copy the unprivileged user can read wherever this checkout lives (CI's may be in /root).
    public = Path(tempfile.mkdtemp(prefix="newest-env-"))
    try:
        (public / "scripts").mkdir()
        shutil.copy(SCRIPT, public / "scripts" / "newest-env")
        for path in (public, public / "scripts", public / "scripts" / "newest-env"):
            path.chmod(0o755)
        env = {**os.environ, "SBMS_NEWEST_ROOT": str(public / "chroot")}
        script = str(public / "scripts" / "newest-env")
        result = _run(*[str(word) for word in prefix], "bash", script, "setup", env=env)
        assert not (public / "chroot").exists()
    finally:
        shutil.rmtree(public)
    assert result.returncode == CANNOT_RUN, result.stderr
    assert "cannot run here: not root" in result.stderr


def test_without_a_command_it_prints_its_usage() -> None:
    result = _run(str(SCRIPT))
    assert result.returncode == 2
    assert "scripts/newest-env setup" in result.stderr
