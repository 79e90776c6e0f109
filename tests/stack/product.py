"""The installed product: what the integration tests run instead of the checkout.

The project's wheel is built once per test session (`pip wheel --no-deps`, the same PEP 517 build
users get) and installed into a fresh virtualenv. Every CLI and daemon the integration tests spawn
comes from there, started as `python -I -m syncer` or the console script (isolated: neither the
working directory nor PYTHONPATH is on `sys.path`) — so a module, entry point or data file missing
from the wheel fails the suite, as it would fail a user.

The dependencies do not change between sessions: they are installed once into a cached virtualenv
(keyed by pyproject.toml's dependency list and the interpreter) that the session's venv sees
through a `.pth` file, and `pip check` proves the wheel's requirements are met. The full user path
— `pip install` of the wheel and the sdist with dependency resolution — is tests/package/'s job.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Installed:
    venv: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def script(self) -> Path:
        """The console script `pullsecret-syncer`, as `pip install` made it."""
        return self.venv / "bin" / "pullsecret-syncer"

    def argv(self, *args: str) -> list[str]:
        """`python -I -m syncer ARGS` of the installed product."""
        return [str(self.python), "-I", "-m", "syncer", *args]


def _run(argv: list[str], *, what: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


def source_copy(dest: Path) -> Path:
    """The files git tracks (committed or staged) of the checkout, copied to `dest`: what a fresh
    clone builds from. A build in the checkout itself would reuse its `build/` directory, where a
    module deleted since the last build still lies and would end up in the wheel."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached"], cwd=REPO, capture_output=True,
                            check=False)
    names = [n for n in listed.stdout.decode().split("\0") if n] if listed.returncode == 0 else []
    if not names:  # not a git checkout: the package sources and metadata
        names = [str(p.relative_to(REPO)) for top in ("syncer", "backends")
                 for p in (REPO / top).rglob("*") if p.is_file() and "__pycache__" not in p.parts]
        names += ["pyproject.toml", "README.md"]
    for name in names:
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    return dest


def build_wheel(source: Path, dest: Path) -> Path:
    """The project's wheel, built from `source` into `dest` (dependencies not included) with this
    interpreter's setuptools (no isolated build env to download: tests/package/ builds isolated)."""
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
          "--no-deps", "--no-build-isolation", "--wheel-dir", str(dest), str(source)],
         what="building the wheel")
    wheels = sorted(dest.glob("pullsecret_syncer-*.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"expected one wheel in {dest}, found {wheels}")
    return wheels[0]


def install(artifact: Path, venv: Path) -> Installed:
    """A fresh virtualenv (no system site-packages) with `artifact` (wheel or sdist) installed."""
    _run([sys.executable, "-m", "venv", str(venv)], what="creating a virtualenv")
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
          "--disable-pip-version-check", str(artifact)], what=f"pip install {artifact.name}")
    return Installed(venv)


def _dependencies_key() -> str:
    import tomllib

    with (REPO / "pyproject.toml").open("rb") as fh:
        deps = tomllib.load(fh)["project"]["dependencies"]
    text = "\n".join([sys.version, *sorted(deps)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _cached_dependencies(wheel: Path) -> Path:
    """site-packages of a cached venv holding the wheel's dependencies (not the wheel itself)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pullsecret-syncer"
    venv = cache / f"product-deps-{_dependencies_key()}"
    python = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = venv / "lib" / python / "site-packages"
    if not (venv / "complete").exists():
        shutil.rmtree(venv, ignore_errors=True)
        install(wheel, venv)
        _run([str(venv / "bin" / "python"), "-m", "pip", "uninstall", "--quiet", "--yes",
              "pullsecret-syncer"], what="removing the product from the dependencies venv")
        (venv / "complete").touch()
    return site


def install_fast(wheel: Path, venv: Path) -> Installed:
    """A fresh virtualenv with `wheel` installed and the cached dependencies on its path."""
    deps = _cached_dependencies(wheel)
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], what="creating a virtualenv")
    done = Installed(venv)
    site = venv / "lib" / deps.parent.name / "site-packages"
    (site / "pss-dependencies.pth").write_text(f"{deps}\n")
    # pip from the dependencies venv, installing into the new one.
    pip = [str(done.python), str(deps / "pip"), "--disable-pip-version-check", "--quiet"]
    _run([*pip, "install", "--no-deps", str(wheel)], what=f"pip install {wheel.name}")
    _run([*pip, "check"], what="pip check of the installed product")
    return done


_lock = threading.Lock()
_installed: Installed | None = None


def installed() -> Installed:
    """The session's installed product, built on first use (≈ 30 s with a warm pip cache).

    PSS_PRODUCT_VENV names a virtualenv that already holds it (set here once built, so a second
    import of this module under another name reuses it rather than building again)."""
    global _installed
    with _lock:
        if _installed is None and os.environ.get("PSS_PRODUCT_VENV"):
            _installed = Installed(Path(os.environ["PSS_PRODUCT_VENV"]))
        if _installed is None:
            root = Path(tempfile.mkdtemp(prefix="pss-product-"))
            if os.environ.get("PSS_KEEP_STACK_DIR") != "1":
                atexit.register(shutil.rmtree, root, ignore_errors=True)
            wheel = build_wheel(source_copy(root / "src"), root / "dist")
            _installed = install_fast(wheel, root / "venv")
            os.environ["PSS_PRODUCT_VENV"] = str(_installed.venv)
        return _installed
