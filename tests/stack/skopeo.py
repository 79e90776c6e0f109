"""skopeo (1.9.3, Debian 12) as the real registry client of the tests.

`make_image` writes a tiny OCI image layout by hand (oci-layout, index.json, blobs/sha256/…);
`push` copies it into a registry with `--dest-creds`; `inspect` reads an image with a
`.dockerconfigjson` as `--authfile`, exactly the bytes the kubelet gets from the Secret (skopeo
uses the entry's `auth` alone). skopeo runs with a private HOME, policy and registries.conf, so
nothing of the machine's own container config takes part. No credential is ever printed: argv is
never shown, and the password is scrubbed from skopeo's output before it is raised.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from stack import procs

_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


class SkopeoError(RuntimeError):
    """skopeo exited non-zero (the message carries its scrubbed output, never argv)."""


@dataclass(frozen=True, slots=True)
class InspectResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def digest(self) -> str | None:
        try:
            return str(json.loads(self.stdout)["Digest"])
        except (ValueError, KeyError, TypeError):
            return None


def skopeo_binary() -> Path:
    found = shutil.which("skopeo")
    if found is None:
        raise procs.StackUnavailableError("skopeo is not installed: `apt-get install skopeo`")
    return Path(found)


def _blob(blobs: Path, data: bytes) -> tuple[str, int]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    (blobs / digest.split(":", 1)[1]).write_bytes(data)
    return digest, len(data)


def make_image(directory: Path, *, tag: str = "v1", content: bytes = b"hello from pss\n") -> Path:
    """An OCI image layout with one tiny layer under `directory`; returns the layout dir."""
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size, info.mtime, info.mode = len(content), 0, 0o644
        tar.addfile(info, io.BytesIO(content))
    layer = tar_bytes.getvalue()
    layer_digest, layer_size = _blob(blobs, gzip.compress(layer, mtime=0))
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]},
    }, sort_keys=True).encode()
    config_digest, config_size = _blob(blobs, config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": _OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer_digest, "size": layer_size}],
    }, sort_keys=True).encode()
    manifest_digest, manifest_size = _blob(blobs, manifest)
    (directory / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    (directory / "index.json").write_text(json.dumps({
        "schemaVersion": 2,
        "manifests": [{"mediaType": _OCI_MANIFEST, "digest": manifest_digest,
                       "size": manifest_size,
                       "annotations": {"org.opencontainers.image.ref.name": tag}}],
    }))
    return directory


def ca_dir(ca_file: Path, directory: Path) -> Path:
    """A `--cert-dir` holding only `ca.crt` (skopeo rejects a *.key without its *.cert, so the
    session's PKI directory itself will not do)."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ca_file, directory / "ca.crt")
    return directory


def _run(args: list[str], *, work: Path, secret: str | None,
         timeout: float) -> subprocess.CompletedProcess[str]:
    home = work / "home"
    home.mkdir(parents=True, exist_ok=True)
    (work / "registries.conf").write_text("")  # no mirrors, no search registries
    (work / "policy.json").write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("REGISTRY_AUTH", "CONTAINERS_", "DOCKER_", "XDG_"))}
    env.update(HOME=str(home), XDG_RUNTIME_DIR=str(home),
               CONTAINERS_REGISTRIES_CONF=str(work / "registries.conf"))
    argv = [str(skopeo_binary()), "--policy", str(work / "policy.json"), *args]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)
    if secret:
        done.stdout = done.stdout.replace(secret, "***")
        done.stderr = done.stderr.replace(secret, "***")
    return done


def _tls_flags(prefix: str, *, tls_verify: bool, cert_dir: Path | None) -> list[str]:
    flags = [f"--{prefix}tls-verify={'true' if tls_verify else 'false'}"]
    if cert_dir is not None:
        flags.append(f"--{prefix}cert-dir={cert_dir}")
    return flags


def push(layout: Path, dest_ref: str, *, username: str, password: str, tag: str = "v1",
         tls_verify: bool = False, cert_dir: Path | None = None, timeout: float = 120) -> None:
    """`skopeo copy --dest-creds … oci:LAYOUT:TAG docker://DEST_REF`; SkopeoError on failure."""
    with tempfile.TemporaryDirectory(prefix="pss-skopeo-") as tmp:
        done = _run(["copy", "--retry-times=0", f"--dest-creds={username}:{password}",
                     *_tls_flags("dest-", tls_verify=tls_verify, cert_dir=cert_dir),
                     f"oci:{layout}:{tag}", f"docker://{dest_ref}"],
                    work=Path(tmp), secret=password, timeout=timeout)
    if done.returncode != 0:
        raise SkopeoError(f"skopeo copy to {dest_ref} exited {done.returncode}: "
                          f"{done.stderr.strip()[-2000:]}")


def inspect(authfile: bytes, ref: str, *, tls_verify: bool = True, ca_dir: Path | None = None,
            timeout: float = 60) -> InspectResult:
    """`skopeo inspect --authfile <authfile bytes> docker://REF`: its exit status and output."""
    with tempfile.TemporaryDirectory(prefix="pss-skopeo-") as tmp:
        work = Path(tmp)
        path = work / "dockerconfig.json"
        path.write_bytes(authfile)
        path.chmod(0o600)
        done = _run(["inspect", "--retry-times=0", f"--authfile={path}",
                     *_tls_flags("", tls_verify=tls_verify, cert_dir=ca_dir),
                     f"docker://{ref}"], work=work, secret=None, timeout=timeout)
    return InspectResult(done.returncode, done.stdout, done.stderr)
