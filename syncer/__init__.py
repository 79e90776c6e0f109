"""pullsecret-syncer: registry pull secrets from Vault or AWS Secrets Manager in namespaces."""

__version__ = "0.1.0"
