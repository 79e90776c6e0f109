"""Load the YAML config file (docs/configuration.md) into frozen values with every default applied.

The file's format lives in :mod:`syncer.configmodels` (pydantic models with camelCase aliases);
backend and credential blocks are validated by the models of the backend plugin they name. Every
problem becomes one line ``<file>: <key path>: <message>`` of a :class:`ConfigError`, and no message
contains a value from the file other than names and references. ``python -m syncer.config``
prints the file's JSON Schema.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic_core import PydanticCustomError

import backends
from backends import base
from syncer import configerrors, configmodels, configschema, configvalues, configyaml
from syncer.core import dockerconfig

ConfigError = configerrors.ConfigError
check_instance = configmodels.check_instance
INSTANCE_MSG = configmodels.INSTANCE_MSG
parse_duration = configmodels.parse_duration
schema = configschema.schema

# The resolved values live in syncer.configvalues; these names are the ones the rest of the code
# uses (config.Config, config.CredentialSpec, …).
FrozenMap = configvalues.FrozenMap
Requirement = configvalues.Requirement
LabelSelector = configvalues.LabelSelector
NamespaceSelection = configvalues.NamespaceSelection
Defaults = configvalues.Defaults
VerifySpec = configvalues.VerifySpec
BackendSpec = configvalues.BackendSpec
CredentialSpec = configvalues.CredentialSpec
MappingSpec = configvalues.MappingSpec
Config = configvalues.Config

# --- loading -------------------------------------------------------------------------------------


def load(
    path: str | os.PathLike[str], *, plugins: Mapping[str, base.BackendPlugin] | None = None
) -> Config:
    """Read and validate the config file; raises :class:`ConfigError` listing every problem."""
    plugins = backends.plugins() if plugins is None else plugins
    problems = configerrors.Problems(os.fspath(path))
    raw = configyaml.read(Path(path), problems)
    if problems:
        raise ConfigError(problems.lines)
    if not isinstance(raw, dict):
        problems.add((), "expected a mapping with keys " + ", ".join(configmodels.TOP_LEVEL))
        raise ConfigError(problems.lines)
    for key in raw:
        if key not in configmodels.TOP_LEVEL:
            problems.unknown_key((key,), key, configmodels.TOP_LEVEL)
    for key in ("version", "backends", "credentials", "mappings"):
        if key not in raw:
            problems.add((key,), "required key is missing")
    version = raw.get("version", 1)
    if type(version) is not int or version != 1:
        problems.add(("version",), "unsupported version (expected 1)")
    instance = _load_instance(raw.get("instance", "default"), problems)

    defaults = _load_defaults(raw.get("defaults"), problems)
    backend_specs, backend_types = _load_backends(raw.get("backends", {}), plugins, problems)
    credential_specs = _load_credentials(
        raw.get("credentials", {}),
        _names_of(raw.get("backends")),
        backend_types,
        plugins,
        defaults,
        problems,
    )
    mappings = _load_mappings(
        raw.get("mappings", []),
        _names_of(raw.get("credentials")),
        credential_specs,
        defaults,
        problems,
    )
    if problems:
        raise ConfigError(problems.lines)
    return Config(
        path=Path(path).absolute(),
        defaults=defaults,
        backends=FrozenMap(backend_specs),
        credentials=FrozenMap(credential_specs),
        mappings=mappings,
        instance=instance,
    )


def _load_instance(raw: Any, problems: configerrors.Problems) -> str:
    """The installation's name (`default` when absent)."""
    if not isinstance(raw, str):
        problems.add(("instance",), "expected a string")
        return "default"
    try:
        return str(configmodels.check_instance(raw))
    except PydanticCustomError:
        problems.add(("instance",), configmodels.INSTANCE_MSG)
        return "default"


def _names_of(section: Any) -> list[str]:
    """The names declared in a section, valid or not (so one bad block causes one problem)."""
    return sorted(k for k in section if isinstance(k, str)) if isinstance(section, dict) else []


def _load_defaults(raw: Any, problems: configerrors.Problems) -> Defaults:
    raw = {} if raw is None else raw
    parsed = problems.validate(configmodels.DefaultsBlock, raw, ("defaults",))
    if isinstance(raw, dict):
        _check_star(raw.get("serviceAccounts"), ("defaults", "serviceAccounts"), problems)
    if parsed is None:
        return Defaults()
    return Defaults(
        refresh_interval=parsed.refresh_interval,
        secret_name=parsed.secret_name,
        service_accounts=tuple(parsed.service_accounts),
        prune=parsed.prune,
        recycle_pods=parsed.recycle_pods,
    )


def _named_blocks(
    raw: Any, section: str, problems: configerrors.Problems
) -> dict[str, dict[Any, Any]]:
    """The ``name -> mapping`` entries of a section that are well-formed; problems for the rest."""
    if not isinstance(raw, dict):
        problems.add((section,), "expected a mapping of names to blocks")
        return {}
    blocks: dict[str, dict[Any, Any]] = {}
    for name, block in raw.items():
        if not isinstance(name, str):
            problems.add((section,), "names must be strings")
            continue
        try:
            configmodels.check_object_name(name)
        except PydanticCustomError:
            problems.add((section, name), configmodels.OBJECT_NAME_MSG)
            continue
        if not isinstance(block, dict):
            problems.add((section, name), "expected a mapping")
            continue
        blocks[name] = block
    return blocks


def _load_backends(
    raw: Any, plugins: Mapping[str, base.BackendPlugin], problems: configerrors.Problems
) -> tuple[dict[str, BackendSpec], dict[str, str]]:
    """Valid backends by name, and the type of every block whose type is known."""
    specs: dict[str, BackendSpec] = {}
    types: dict[str, str] = {}
    known_types = ", ".join(sorted(plugins))
    for name, block in _named_blocks(raw, "backends", problems).items():
        where = ("backends", name)
        type_name = block.get("type")
        if "type" not in block:
            problems.add((*where, "type"), f"required key is missing (one of: {known_types})")
            continue
        if not isinstance(type_name, str) or type_name not in plugins:
            problems.add((*where, "type"), f"unknown backend type (known: {known_types})")
            continue
        types[name] = type_name
        rest = {k: v for k, v in block.items() if k != "type"}
        settings = problems.validate(plugins[type_name].settings_model, rest, where)
        if settings is not None:
            specs[name] = BackendSpec(name=name, type=type_name, settings=settings)
    return specs, types


def _load_credentials(
    raw: Any,
    declared: list[str],
    backend_types: Mapping[str, str],
    plugins: Mapping[str, base.BackendPlugin],
    defaults: Defaults,
    problems: configerrors.Problems,
) -> dict[str, CredentialSpec]:
    specs: dict[str, CredentialSpec] = {}
    for name, block in _named_blocks(raw, "credentials", problems).items():
        where = ("credentials", name)
        common = problems.validate(
            configmodels.CredentialBlock,
            {k: v for k, v in block.items() if k in configmodels.COMMON_KEYS},
            where,
        )
        backend = block.get("backend")
        if isinstance(backend, str) and backend not in declared:
            problems.add((*where, "backend"), f"unknown backend {backend!r} {_known(declared)}")
        if not isinstance(backend, str) or backend not in backend_types:
            continue  # without a backend type, the backend-specific keys cannot be judged
        type_name = backend_types[backend]
        tokens = bool(getattr(plugins[type_name], "issues_tokens", False))
        if tokens:
            for key, why in configmodels.TOKEN_FORBIDDEN.items():
                if key in block:
                    problems.add((*where, key), f"not allowed for backend type {type_name}: {why}")
        options = problems.validate(
            plugins[type_name].ref_model,
            {k: v for k, v in block.items() if k not in configmodels.COMMON_KEYS},
            where,
            extra_allowed=configmodels.COMMON_KEYS,
        )
        if common is None or options is None:
            continue
        names = common.fields or configmodels.FieldsBlock()
        specs[name] = CredentialSpec(
            name=name,
            backend=common.backend,
            registry=common.registry,
            fields=dockerconfig.FieldNames(
                username=names.username, password=names.password, email=names.email
            ),
            refresh_interval=common.refresh_interval or defaults.refresh_interval,
            ref=base.CredentialRef(name=name, options=options),
            verify=_verify_spec(common.verify),
            issues_tokens=tokens,
        )
    return specs


def _verify_spec(parsed: bool | configmodels.VerifyBlock | None) -> VerifySpec | None:
    if parsed is None or parsed is False:
        return None
    if parsed is True:
        return VerifySpec()
    return VerifySpec(
        ca_cert=parsed.ca_cert,
        insecure_skip_verify=parsed.insecure_skip_verify,
        plain_http=parsed.plain_http,
    )


def _load_mappings(
    raw: Any,
    declared: list[str],
    credential_specs: Mapping[str, CredentialSpec],
    defaults: Defaults,
    problems: configerrors.Problems,
) -> tuple[MappingSpec, ...]:
    if not isinstance(raw, list):
        problems.add(("mappings",), "expected a list")
        return ()
    first_index: dict[str, int] = {}
    specs: list[MappingSpec] = []
    for index, item in enumerate(raw):
        where: configerrors.Loc = ("mappings", index)
        parsed = problems.validate(configmodels.MappingBlock, item, where)
        # The cross-checks read the raw item, so that a type error elsewhere in the same mapping
        # does not hide them; wrong types were reported by the validation above.
        if isinstance(item, dict):
            name = item.get("name")
            if isinstance(name, str) and name in first_index:
                problems.add(
                    (*where, "name"),
                    f"duplicate mapping name {name!r} (first at mappings[{first_index[name]}])",
                )
            if isinstance(name, str):
                first_index.setdefault(name, index)
            _check_namespaces(item.get("namespaces"), (*where, "namespaces"), problems)
            _check_credentials(item.get("credentials"), declared, credential_specs, where, problems)
            _check_star(item.get("serviceAccounts"), (*where, "serviceAccounts"), problems)
        if parsed is not None:
            specs.append(_mapping_spec(parsed, defaults))
    return tuple(specs)


def _check_namespaces(ns: Any, where: configerrors.Loc, problems: configerrors.Problems) -> None:
    if not isinstance(ns, dict):
        return
    if not ns.get("names") and not ns.get("patterns") and ns.get("selector") is None:
        problems.add(where, "no namespace selection: set at least one of names, patterns, selector")
    selector = ns.get("selector")
    expressions = selector.get("matchExpressions") if isinstance(selector, dict) else None
    for i, req in enumerate(expressions if isinstance(expressions, list) else []):
        operator = req.get("operator") if isinstance(req, dict) else None
        at = (*where, "selector", "matchExpressions", i, "values")
        if operator in ("In", "NotIn") and not req.get("values"):
            problems.add(at, f"operator {operator} needs at least one value")
        elif operator in ("Exists", "DoesNotExist") and req.get("values"):
            problems.add(at, f"operator {operator} takes no values")


def _check_credentials(
    names: Any,
    declared: list[str],
    specs: Mapping[str, CredentialSpec],
    where: configerrors.Loc,
    problems: configerrors.Problems,
) -> None:
    if not isinstance(names, list):
        return
    if not names:
        problems.add((*where, "credentials"), "must list at least one credential")
    pinned: dict[str, str] = {}
    for i, name in enumerate(names):
        at = (*where, "credentials", i)
        if not isinstance(name, str):
            continue
        if name not in declared:
            problems.add(at, f"unknown credential {name!r} {_known(declared)}")
        elif names.index(name) != i:
            problems.add(at, f"credential {name!r} is listed twice")
        elif name in specs and (registry := specs[name].registry) is not None:
            if registry in pinned:
                problems.add(
                    at, f"credentials {pinned[registry]!r} and {name!r} pin the same registry"
                )
            pinned.setdefault(registry, name)


def _check_star(accounts: Any, where: configerrors.Loc, problems: configerrors.Problems) -> None:
    if isinstance(accounts, list) and "*" in accounts and len(accounts) > 1:
        problems.add(where, "'*' (every ServiceAccount) must be the only entry")


def _known(names: list[str]) -> str:
    return f"(known: {', '.join(names) or 'none'})"


def _mapping_spec(parsed: configmodels.MappingBlock, defaults: Defaults) -> MappingSpec:
    ns = parsed.namespaces
    selector = None
    if ns.selector is not None:
        selector = LabelSelector(
            match_labels=FrozenMap(ns.selector.match_labels),
            match_expressions=tuple(
                Requirement(key=r.key, operator=r.operator, values=tuple(r.values or ()))
                for r in ns.selector.match_expressions
            ),
        )
    accounts = parsed.service_accounts
    return MappingSpec(
        name=parsed.name,
        namespaces=NamespaceSelection(
            names=tuple(ns.names),
            patterns=tuple(ns.patterns),
            selector=selector,
            exclude=tuple(ns.exclude),
        ),
        secret_name=parsed.secret_name or defaults.secret_name,
        credentials=tuple(parsed.credentials),
        service_accounts=defaults.service_accounts if accounts is None else tuple(accounts),
        adopt_existing=parsed.adopt_existing,
        prune=defaults.prune if parsed.prune is None else parsed.prune,
        recycle_pods=defaults.recycle_pods if parsed.recycle_pods is None else parsed.recycle_pods,
    )


def schema_json() -> str:
    """``schema()`` as written to ``config/schema.json`` (sorted keys, indent 2, newline)."""
    return json.dumps(schema(), sort_keys=True, indent=2) + "\n"


if __name__ == "__main__":
    sys.stdout.write(schema_json())
