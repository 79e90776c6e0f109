"""What `pip install pullsecret-syncer` gives a user: the sdist and the wheel, built by `python -m
build` as a release would be, each installed into a fresh virtualenv (no `-e`, no checkout on
`sys.path`), then every sub-command and every module of the installed distribution.

Run from a temporary directory with `python -I` (isolated: no cwd, no PYTHONPATH), so nothing can
import the checkout by accident; every module is also checked to load from the venv.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.stack import product

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "config" / "examples").glob("*.yaml"))


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`python -m build` (isolated build env, as release tooling does) of the checkout's tracked
    files: the sdist, then the wheel built from that sdist, as `pip install` of an sdist would."""
    out = tmp_path_factory.mktemp("dist")
    source = product.source_copy(tmp_path_factory.mktemp("src"))
    proc = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(source)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


@pytest.fixture(scope="module", params=["wheel", "sdist"])
def installed(request: pytest.FixtureRequest, dist: Path,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[product.Installed]:
    pattern = "*.whl" if request.param == "wheel" else "*.tar.gz"
    (artifact,) = dist.glob(pattern)
    yield product.install(artifact, tmp_path_factory.mktemp(f"venv-{request.param}"))


def run(inst: product.Installed, argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "KUBE", "VAULT_"))}
    # demo.yaml takes the address and token from the environment (check does not connect)
    env.update(VAULT_ADDR="http://127.0.0.1:8200", VAULT_TOKEN="not-a-real-token")
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
                          check=False)


def local_copy(example: Path, tmp: Path) -> Path:
    """The example with the files it names (`caCert`, `…File`: paths inside a Pod) made here."""
    doc = yaml.safe_load(example.read_text())

    def relocate(node: object) -> object:
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                if (isinstance(value, str) and value.startswith("/")
                        and (key == "caCert" or key.endswith("File"))):
                    local = tmp / "files" / value.lstrip("/")
                    local.parent.mkdir(parents=True, exist_ok=True)
                    local.write_text("placeholder: check reads no file's content\n")
                    value = str(local)
                out[key] = relocate(value)
            return out
        if isinstance(node, list):
            return [relocate(item) for item in node]
        return node

    copy = tmp / example.name
    copy.write_text(yaml.safe_dump(relocate(doc), sort_keys=False))
    return copy


def test_the_wheel_holds_every_package_of_the_tree(dist: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = sorted(str(p.parent.relative_to(REPO)) for top in ("syncer", "backends")
                      for p in (REPO / top).rglob("__init__.py") if "__pycache__" not in p.parts)
    missing = [p for p in packages if f"{p}/__init__.py" not in names]
    assert not missing, f"packages left out of the wheel: {missing}"
    assert {"syncer/py.typed", "backends/py.typed"} <= names


def test_the_console_script_and_python_m_syncer_run_every_command(
        installed: product.Installed, tmp_path: Path) -> None:
    version = run(installed, [str(installed.script), "version"], tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("pullsecret-syncer "), version
    module = run(installed, installed.argv("version"), tmp_path)
    assert module.returncode == 0 and module.stdout == version.stdout, module
    for command in ("run", "sync", "plan", "check", "uninstall"):
        helped = run(installed, installed.argv(command, "--help"), tmp_path)
        assert helped.returncode == 0 and "usage:" in helped.stdout, (command, helped)
    assert EXAMPLES, "config/examples/ is empty"
    for example in EXAMPLES:
        copy = local_copy(example, tmp_path)
        checked = run(installed, installed.argv("check", "--config", str(copy)), tmp_path)
        assert checked.returncode == 0, (example.name, checked.stdout, checked.stderr)
        assert "Traceback" not in checked.stdout + checked.stderr


WALK = """
import importlib, importlib.util, json, pkgutil, sys
import backends, syncer
seen = {}
for top in (syncer, backends):
    seen[top.__name__] = top.__file__
    for info in pkgutil.walk_packages(top.__path__, top.__name__ + "."):
        if info.name.endswith(".__main__"):  # runs the CLI; `python -m syncer` is run above
            seen[info.name] = importlib.util.find_spec(info.name).origin
            continue
        module = importlib.import_module(info.name)
        seen[info.name] = module.__file__
import importlib.metadata
eps = importlib.metadata.entry_points(group="pullsecret_syncer.backends")
points = sorted(ep.name for ep in eps)
for ep in eps:
    ep.load()
print(json.dumps({"modules": seen, "backends": points, "prefix": sys.prefix}))
"""


def test_every_module_of_the_installed_distribution_imports_from_the_venv(
        installed: product.Installed, tmp_path: Path) -> None:
    proc = run(installed, [str(installed.python), "-I", "-c", WALK], tmp_path)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    modules: dict[str, str] = found["modules"]
    # walk_packages finds subpackages by import, so a package missing from the wheel is missing here
    in_tree = {".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
               for top in ("syncer", "backends") for p in (REPO / top).rglob("*.py")}
    missing = sorted(in_tree - set(modules))
    assert not missing, f"not importable when installed: {missing}"
    outside = {name: path for name, path in modules.items()
               if not path.startswith(str(installed.venv))}
    assert not outside, f"imported from outside the venv: {outside}"
    assert found["backends"] == ["aws-ecr", "aws-secrets-manager", "vault"]
