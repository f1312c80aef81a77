"""Packages people can depend on: the server wheel installs into a fresh virtualenv and brings
the runtime images' recipes; every shim carries the Apache-2.0 licence and one version string,
the one its ready frame announces."""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import pytest

from conftest import ROOT

SKIP = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__",
                              ".pytest_cache", "tests", "bench", "var")


def build_wheel(source: pathlib.Path, tmp_path: pathlib.Path, name: str) -> pathlib.Path:
    """A wheel of ``source``, built from a copy (an in-tree build leaves build/ behind), offline."""
    copy = tmp_path / f"src-{source.name}"
    shutil.copytree(source, copy, symlinks=True, ignore=SKIP)
    out = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-index",
                    "--no-build-isolation", "-w", str(out), str(copy)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = out.glob(f"{name}-*.whl")
    return wheel


def metadata(wheel: pathlib.Path) -> str:
    with zipfile.ZipFile(wheel) as z:
        return z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()


def test_the_server_wheel_installs_in_a_fresh_venv_and_brings_the_recipes(tmp_path):
    wheel = build_wheel(ROOT, tmp_path, "hotfn")
    meta = metadata(wheel)
    version = re.search(r"^Version: (.+)$", meta, re.M).group(1)
    assert re.search(r"^License: Apache-2.0$", meta, re.M)
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE") for n in names)
    for runtime in ("python", "node", "java", "clojure"):
        assert f"hotfn/recipes/{runtime}/Dockerfile" in names
    assert "hotfn/recipes/build-images" in names and "hotfn/recipes/python/hotfn_runtime/runner.py" in names

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True, timeout=120)
    # hotfn's dependencies come from the test environment (no network here); hotfn itself,
    # its version and its recipes come from the wheel alone.
    site = subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    pathlib.Path(site, "test-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HOTFN_SERVER")}
    shown = subprocess.run([str(venv / "bin" / "hotfn"), "version", "--server", "http://127.0.0.1:9"],
                           capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert shown.stdout.splitlines()[0].split() == ["client", version], shown
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import hotfn.functions.runtime_images as i; print(i.recipes_dir())"],
                           capture_output=True, text=True, cwd=tmp_path, env=env, check=True).stdout.strip()
    assert where.startswith(str(venv))
    refused = subprocess.run([str(venv / "bin" / "hotfn"), "images", "build", "cobol"],
                             capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert refused.returncode == 1
    assert "unknown runtime 'cobol'; known: clojure, java, node, python" in refused.stderr


def test_the_python_shim_wheel_has_the_version_its_ready_frame_announces(tmp_path):
    shim = ROOT / "runtime-shims" / "python"
    wheel = build_wheel(shim, tmp_path, "hotfn_runtime")
    meta = metadata(wheel)
    version = re.search(r"^Version: (.+)$", meta, re.M).group(1)
    assert re.search(r"^License: Apache-2.0$", meta, re.M)
    source = (shim / "hotfn_runtime" / "__init__.py").read_text()
    assert f'__version__ = "{version}"' in source
    runner = (shim / "hotfn_runtime" / "runner.py").read_text()
    assert "SHIM_VERSION = __version__" in runner and "hotfn-python/{SHIM_VERSION}" in runner


def test_the_ready_frames_name_the_packaged_versions(tmp_path):
    """The shims, run as the images run them (from their source), announce their packages'
    versions in the ready frame."""
    from hotfn import protocol

    version = re.search(r'__version__ = "(.+)"',
                        (ROOT / "runtime-shims/python/hotfn_runtime/__init__.py").read_text()).group(1)
    (tmp_path / "func.py").write_text("def handler(request):\n    return 'x'\n")
    env = {**os.environ, "HOTFN_FORMAT": "hot", "HOTFN_FUNCTION_DIR": str(tmp_path),
           "PYTHONPATH": str(ROOT / "runtime-shims/python")}
    out = subprocess.run([sys.executable, "-m", "hotfn_runtime"], input=b"", capture_output=True,
                         env=env, cwd=tmp_path, timeout=60).stdout
    decoder = protocol.FrameDecoder()
    decoder.receive_data(out)
    ready = decoder.next_frame()
    assert isinstance(ready, protocol.Ready) and ready.runtime.endswith(f" hotfn-python/{version}"), ready
    if shutil.which("node"):
        node = json.loads((ROOT / "runtime-shims/node/package.json").read_text())
        runtime = subprocess.run(["node", "-e", "console.log(require('./lib/version.js').RUNTIME)"],
                                 cwd=ROOT / "runtime-shims/node", capture_output=True, text=True,
                                 check=True, timeout=60).stdout.strip()
        assert runtime.endswith(f" hotfn-node/{node['version']}")


def test_the_node_shim_is_a_publishable_package_with_types():
    package = json.loads((ROOT / "runtime-shims/node/package.json").read_text())
    assert package["license"] == "Apache-2.0" and not package.get("private")
    assert package["types"] == "lib/index.d.ts" and (ROOT / "runtime-shims/node" / package["types"]).is_file()
    assert "require('../package.json').version" in (ROOT / "runtime-shims/node/lib/version.js").read_text()
    if shutil.which("npm"):
        packed = json.loads(subprocess.run(["npm", "pack", "--dry-run", "--json"], cwd=ROOT / "runtime-shims/node",
                                           capture_output=True, text=True, check=True, timeout=120).stdout)[0]
        files = {f["path"] for f in packed["files"]}
        assert {"lib/index.d.ts", "lib/index.js", "bin/hotfn-node.js", "package.json"} <= files


def test_the_java_runtime_has_maven_coordinates_at_its_own_version():
    pom = (ROOT / "runtime-shims/java/pom.xml").read_text()
    shim = re.search(r'SHIM_VERSION = "(.+?)"', (ROOT / "runtime-shims/java/src/main/java/hotfn/Runtime.java").read_text())
    assert re.search(r"<groupId>dev.hotfn</groupId>\s*<artifactId>hotfn-runtime</artifactId>\s*"
                     rf"<version>{re.escape(shim.group(1))}</version>", pom)
    assert "<name>Apache-2.0</name>" in pom
    assert 'dev.hotfn/hotfn-runtime {:mvn/version "' + shim.group(1) + '"}' in (
        ROOT / "runtime-shims/clojure/README.md").read_text()


def test_the_licence_is_apache_2():
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
