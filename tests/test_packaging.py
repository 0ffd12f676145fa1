"""Packaging: the wheel builds, installs into a fresh virtualenv and works from there.

The fresh environment reuses the dependencies already installed beside the test run (a ``.pth``
file points at their site-packages), so nothing is downloaded; npigym itself comes only from
the wheel (no editable install, no source tree on the path).
"""

from __future__ import annotations

import configparser
import glob
import os
import shutil
import site
import subprocess
import sys
import textwrap
import zipfile

import pytest

import npigym

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = ("setup.cfg", "pyproject.toml", "README.md", "LICENSE", "npigym")


def run(cmd, **kwargs):
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kwargs)
    assert out.returncode == 0, (f"{cmd}\nstdout:\n{out.stdout[-3000:]}\n"
                                 f"stderr:\n{out.stderr[-3000:]}")
    return out.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    # Built from a copy of the sources, so the shared checkout gets no build/ or egg-info.
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        path = os.path.join(ROOT, name)
        if os.path.isdir(path):
            shutil.copytree(path, src / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(path, src / name)
    dist = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "-q", "-w", str(dist), str(src)])
    (whl,) = glob.glob(str(dist / "npigym-*.whl"))
    return whl


def test_wheel_holds_the_package_and_the_license(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "npigym/__init__.py" in names and "npigym/wrappers/gymnax.py" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE")
               for n in names)
    metadata = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "Apache-2.0" in metadata
    assert "Requires-Dist: gymnasium>=1.1.0" in metadata
    assert 'Provides-Extra: external' in metadata


def test_license_matches_the_metadata():
    config = configparser.ConfigParser()
    config.read(os.path.join(ROOT, "setup.cfg"))
    assert config["metadata"]["license"] == "Apache-2.0"
    with open(os.path.join(ROOT, "LICENSE")) as f:
        text = f.read()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_installed_wheel_lists_and_steps(wheel, tmp_path):
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = str(venv / "bin" / "python")
    purelib = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    # The already installed dependencies, after the venv's own site-packages.
    deps = [p for p in site.getsitepackages() if os.path.isdir(p)]
    with open(os.path.join(purelib.strip(), "_deps.pth"), "w") as f:
        f.write("\n".join(deps) + "\n")
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
         "-q", wheel])
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONNOUSERSITE": "1"}
    env.pop("PYTHONPATH", None)
    listed = run([str(venv / "bin" / "npigym"), "list"], cwd=str(tmp_path), env=env)
    assert "Addition-v0" in listed and "Sorting-v0" in listed
    code = textwrap.dedent("""
        import jax, npigym
        print(npigym.__file__)
        env = npigym.make("Addition-v0", max_digits=2)
        state, ts = env.reset(jax.random.PRNGKey(0))
        state, ts = env.step(state, env.expert_action(state))
        print("stepped", int(ts.step_type), npigym.__version__)
    """)
    out = run([python, "-c", code], cwd=str(tmp_path), env=env).split("\n")
    assert out[0].startswith(purelib.strip()), out[0]  # the wheel's copy, not the checkout
    assert out[1] == f"stepped 1 {npigym.__version__}"
