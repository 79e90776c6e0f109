"""The config file: :func:`load` reads it into a frozen :class:`Config`, or raises a
:class:`ConfigError` with one ``<file>: <key path>: <message>`` line per problem.

The values are the validated models themselves (:mod:`syncer.config.models`), with every default
applied; ``parse_duration``, ``check_instance`` and ``INSTANCE_MSG`` let the CLI's flags take a
duration and an installation name as the file spells them. Inside: the YAML reader
(``yamldoc``), the problem lines (``problems``), the value formats (``formats``), the models
(``models``), the loader (``loader``) and the JSON Schema (``schema``; ``python -m
syncer.config`` prints it).
"""

from backends.durations import parse_duration
from syncer.config.formats import INSTANCE_MSG, check_instance
from syncer.config.loader import load
from syncer.config.models import (
    BackendSpec,
    Config,
    CredentialSpec,
    Defaults,
    LabelSelector,
    MappingSpec,
    NamespaceSelection,
    Requirement,
    VerifySpec,
)
from syncer.config.problems import ConfigError
from syncer.config.schema import schema, schema_json

__all__ = [
    "INSTANCE_MSG",
    "BackendSpec",
    "Config",
    "ConfigError",
    "CredentialSpec",
    "Defaults",
    "LabelSelector",
    "MappingSpec",
    "NamespaceSelection",
    "Requirement",
    "VerifySpec",
    "check_instance",
    "load",
    "parse_duration",
    "schema",
    "schema_json",
]
