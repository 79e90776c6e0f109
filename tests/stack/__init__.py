"""The real-server test stack: etcd + kube-apiserver + kube-controller-manager, OpenBao, moto.

Each module starts one kind of server on 127.0.0.1 (free ports, fresh PKI), waits until it is
ready, and stops exactly the processes it started; `tests/conftest.py` wraps them in fixtures.
"""
