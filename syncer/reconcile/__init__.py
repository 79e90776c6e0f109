"""One reconcile pass: observe, compute desired state, diff, apply the differences, report.

`engine` runs a pass; `apply` writes with race retries; `findings` reports conflicts and failures
(log, metric, Warning Event, de-duplicated); `observe` reads a cluster view with constant lists.
Never imports `syncer.run`: a pass knows nothing about the daemon that schedules it.
"""
