"""The per-session runtime directory of the stack and its lazily created certificate authority."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path

from stack import pki


class Runtime:
    """Owns `/tmp/pss-stack-XXXX/`: logs, PKI, data dirs of every server of one session."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or Path(tempfile.mkdtemp(prefix="pss-stack-"))
        self._lock = threading.Lock()
        self._authority: pki.Authority | None = None

    def subdir(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def authority(self) -> pki.Authority:
        """The session CA: signs the apiserver cert and the fault proxy's TLS certs."""
        with self._lock:
            if self._authority is None:
                self._authority = pki.Authority(self.subdir("pki"))
            return self._authority

    def cleanup(self, *, keep: bool) -> None:
        """Remove the directory unless `keep` (or PSS_KEEP_STACK_DIR=1): then logs stay."""
        if keep or os.environ.get("PSS_KEEP_STACK_DIR") == "1":
            return
        shutil.rmtree(self.root, ignore_errors=True)
