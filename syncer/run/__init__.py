"""`pullsecret-syncer run`: the daemon and its loops — watch caches, the credential refresher,
leader election, the work queue and its worker. Every loop is supervised (`loops`): an unexpected
exception is logged and the loop restarts; no thread of a live process ever dies silently.
"""
