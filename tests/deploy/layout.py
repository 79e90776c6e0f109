"""Where the deploy artifacts live in the checkout: shared by the manifest tests (tests/deploy)
and the server-side apply of the same manifests (tests/integration/test_deploy_apply.py)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
KUSTOMIZATIONS = {
    "base": DEPLOY / "kubernetes" / "base",
    "kind": DEPLOY / "kubernetes" / "overlays" / "kind",
    "production": DEPLOY / "kubernetes" / "overlays" / "production",
}
