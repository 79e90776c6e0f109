"""``python -m syncer.config`` prints the config file's JSON Schema (``make schema``)."""

import sys

from syncer.config.schema import schema_json

sys.stdout.write(schema_json())
