"""The RBAC verbs the code really calls, derived from the source of the one Kubernetes client
(`syncer/kube/client/cluster.py`): every `self._http.call(METHOD, PATH, …)`,
`self._http.call_list(PATH, …)` (a paged list) and `self._http.stream(PATH, …)` is read
with `ast` and turned into (API group, resource, verb) the way the apiserver authorizes it. A
new call there changes what the manifests must grant; a grant that no call needs shows up as a
difference.
"""

from __future__ import annotations

import ast
from pathlib import Path

CLUSTER = Path(__file__).resolve().parents[2] / "syncer" / "kube" / "client" / "cluster.py"

Grant = tuple[str, str, str]  # (apiGroup, resource[/subresource], verb)


def _constants(tree: ast.Module) -> dict[str, object]:
    """Module-level `NAME = literal` (strings, dicts of strings)."""
    out: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            target = node.targets[0] if isinstance(node, ast.Assign) else node.target
            if isinstance(target, ast.Name) and node.value is not None:
                try:
                    out[target.id] = ast.literal_eval(node.value)
                except ValueError:
                    continue
    return out


def _paths(node: ast.expr, constants: dict[str, object]) -> list[str]:
    """The path templates an expression can be, placeholders as `{}`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        parts: list[list[str]] = [[""]]
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append([str(value.value)])
            elif isinstance(value, ast.FormattedValue):
                inner = _paths(value.value, constants)
                parts.append(inner if inner != ["{}"] else ["{}"])
        out = [""]
        for options in parts:
            out = [a + b for a in out for b in options]
        return out
    if isinstance(node, ast.Name) and isinstance(constants.get(node.id), str):
        return [str(constants[node.id])]
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "format"):  # "_LEASES.format(ns=…)"
        return [p.replace("{ns}", "{}") for p in _paths(node.func.value, constants)]
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        table = constants.get(node.value.id)
        if isinstance(table, dict):  # "_PATHS[kind.name]": any of them
            return [str(v) for v in table.values()]
    return ["{}"]


def _grant(method: str, path: str, *, stream: bool) -> Grant:
    segments = [s for s in path.split("/") if s]
    if segments[:2] == ["api", "v1"]:
        group, rest = "", segments[2:]
    else:
        assert segments[0] == "apis", path
        group, rest = segments[1], segments[3:]
    if rest[0] == "namespaces" and len(rest) > 2:
        rest = rest[2:]  # a namespaced resource
    resource = rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "")
    collection = len(rest) == 1
    verb = {
        "GET": "watch" if stream else ("list" if collection else "get"),
        "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete",
    }[method]
    return group, resource, verb


def called() -> set[Grant]:
    """Every (group, resource, verb) that some method of the client can request."""
    tree = ast.parse(CLUSTER.read_text())
    constants = _constants(tree)
    grants: set[Grant] = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Attribute)
                and node.func.value.attr == "_http"
                and node.func.attr in ("call", "call_list", "stream")):
            continue
        if node.func.attr == "call_list":
            method, path_node, stream = "GET", node.args[0], False
        elif node.func.attr == "call":
            method_node, path_node = node.args[0], node.args[1]
            assert isinstance(method_node, ast.Constant), ast.dump(node)
            method, stream = str(method_node.value), False
        else:
            method, path_node, stream = "GET", node.args[0], True
        for path in _paths(path_node, constants):
            grants.add(_grant(method, path, stream=stream))
    return grants


def granted(rules: list[dict[str, object]]) -> set[Grant]:
    """What RBAC rules grant, as (group, resource, verb)."""
    out: set[Grant] = set()
    for rule in rules:
        for group in rule["apiGroups"]:  # type: ignore[attr-defined]
            for resource in rule["resources"]:  # type: ignore[attr-defined]
                for verb in rule["verbs"]:  # type: ignore[attr-defined]
                    out.add((str(group), str(resource), str(verb)))
    return out


RECYCLE_PODS = {("", "pods"), ("", "pods/eviction")}  # granted only where recycling is on
# Events are read back only by `plan` (the contested ServiceAccounts it lists), which a person runs
# with their own credentials; the daemon never lists or watches them, so the manifests do not grant
# it (without the grant `plan` prints one note). The generic list/watch of the client reaches them.
PLAN_ONLY = {("", "events", "list"), ("", "events", "watch")}


def base_calls() -> set[Grant]:
    return {g for g in called() if (g[0], g[1]) not in RECYCLE_PODS and g not in PLAN_ONLY}


def recycle_calls() -> set[Grant]:
    return {g for g in called() if (g[0], g[1]) in RECYCLE_PODS}
