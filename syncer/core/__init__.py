"""The records and formats every other floor speaks: Kubernetes records and ownership (`model`),
`.dockerconfigjson` (`dockerconfig`), the kubelet's keyring rules, token renewal rules, settings.
Pure: no I/O, and nothing here imports another floor of `syncer`."""
