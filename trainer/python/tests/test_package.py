"""The package installs with pip (offline, from this tree) and imports from the install."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def test_pip_installs_the_package(tmp_path):
    src = Path(__file__).resolve().parents[1]
    copy = tmp_path / "src"
    # Build from a copy: pip builds in-tree and would leave build/ and *.egg-info here.
    shutil.copytree(src, copy, ignore=shutil.ignore_patterns("tests", "examples", "__pycache__", "build", "*.egg-info"))
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-build-isolation", "--no-deps", "--no-index", "--target", str(target), str(copy)],
        check=True,
        capture_output=True,
    )
    assert (target / "sadp_loader" / "py.typed").exists()
    assert (target / "sadp_loader" / "_proto" / "sadp" / "v1" / "loader_pb2.pyi").exists()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(target)
    out = subprocess.run(
        [sys.executable, "-c", "import sadp_loader; print(sadp_loader.__file__, sadp_loader.__version__)"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    ).stdout
    assert out.startswith(str(target)) and out.strip().endswith("0.1.0")
