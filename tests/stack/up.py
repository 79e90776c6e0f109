"""Start the whole test stack by hand and print how to reach it (and how long it took).

    python3 tests/stack/up.py          # start, print env exports, run until Ctrl-C / SIGTERM
    python3 tests/stack/up.py --once   # start, print timings, stop (a readiness benchmark)
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stack import aws, kube, procs, runtime, vault


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--once", action="store_true", help="stop as soon as all is ready")
    args = parser.parse_args()
    rt = runtime.Runtime()
    stop = threading.Event()
    procs.install_sigterm_handler(then=lambda _signum: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    began = time.monotonic()
    try:
        cluster = kube.start(rt)
        t_kube = time.monotonic()
        bao = vault.start(rt.subdir("vault"))
        vault.configure_kubernetes_auth(bao, cluster)
        t_vault = time.monotonic()
        moto = aws.start(rt.subdir("aws"))
        t_aws = time.monotonic()
    except procs.StackUnavailableError as exc:
        print(exc.report(), file=sys.stderr)
        procs.stop_all()
        return 1
    print(f"# ready in {t_aws - began:.1f}s: kube {t_kube - began:.1f}s, "
          f"openbao+k8s auth {t_vault - t_kube:.1f}s, moto {t_aws - t_vault:.1f}s")
    print(f"export KUBECONFIG={cluster.kubeconfig}")
    print(f"export VAULT_ADDR={bao.addr} VAULT_TOKEN={bao.token}")
    print(f"export PSS_AWS_ENDPOINT={moto.endpoint} AWS_ACCESS_KEY_ID=testing "
          f"AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION={moto.region}")
    print(f"# logs: {rt.root}", flush=True)
    try:
        if not args.once:
            while not stop.wait(1):
                pass
    finally:
        procs.stop_all()
        rt.cleanup(keep=not args.once)
    return 0


if __name__ == "__main__":
    sys.exit(main())
