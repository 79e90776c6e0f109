"""The decisions, as pure functions: the desired state (`desired`), the actions that reach it
(`plan`), what `uninstall` removes (`teardown`), which Pods to recycle (`recycle`), rival writers
(`fight`), and the counts behind progress lines (`progress`). No I/O."""
