"""Bad flags and a bad environment are usage errors: exit 2, one line on stderr, no traceback,
never "internal error" (docs/operations.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncer import cli
from tests.unit import fakes


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VAULT_TOKEN", "unused")
    return fakes.write_config(tmp_path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.err


@pytest.mark.parametrize(("flags", "says"), [
    (["--http-addr", "foo"], "expected HOST:PORT"),
    (["--http-addr", "0.0.0.0:70000"], "port 70000 is out of range"),
    (["--http-addr", ":-1"], "expected HOST:PORT"),
    (["--kube-qps", "0"], "must be greater than 0"),
    (["--kube-qps", "-5"], "must be greater than 0"),
    (["--kube-qps", "lots"], "expected a number"),
    (["--kube-burst", "0"], "must be at least 1"),
    (["--resync-interval", "0s"], "at least 1s"),
])
def test_a_bad_flag_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], cfg: Path,
                                           flags: list[str], says: str) -> None:
    code, err = run(capsys, "run", "--config", str(cfg), *flags)
    assert code == 2
    assert err.count("\n") == 1 and says in err, err
    assert "Traceback" not in err and "internal error" not in err


def test_an_unknown_subcommand_or_missing_config_is_one_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["frobnicate"], ["sync"]):
        code, err = run(capsys, *argv)
        assert code == 2 and err.count("\n") == 1, err


def test_an_unreadable_kubeconfig_is_a_usage_error(capsys: pytest.CaptureFixture[str], cfg: Path,
                                                   tmp_path: Path) -> None:
    missing = tmp_path / "nope.kubeconfig"
    code, err = run(capsys, "sync", "--config", str(cfg), "--kubeconfig", str(missing))
    assert code == 2 and err.count("\n") == 1, err
    assert str(missing) in err and "Traceback" not in err
    garbage = tmp_path / "garbage.kubeconfig"
    garbage.write_text(": not: [yaml")
    code, err = run(capsys, "plan", "--config", str(cfg), "--kubeconfig", str(garbage))
    assert code == 2 and err.count("\n") == 1 and "internal error" not in err, err


def test_an_unknown_context_is_a_usage_error(capsys: pytest.CaptureFixture[str], cfg: Path,
                                             tmp_path: Path) -> None:
    kubeconfig = tmp_path / "k.yaml"
    kubeconfig.write_text("""\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
""")
    code, err = run(capsys, "sync", "--config", str(cfg), "--kubeconfig", str(kubeconfig),
                    "--context", "nope")
    assert code == 2 and "nope" in err and err.count("\n") == 1, err


def test_an_aws_profile_that_does_not_exist_is_a_usage_error(
        capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "does-not-exist")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    path = tmp_path / "aws.yaml"
    path.write_text("""\
version: 1
backends: {aws: {type: aws-secrets-manager, region: eu-west-1}}
credentials: {ghcr: {backend: aws, secretId: x}}
mappings: [{name: m, namespaces: {names: [a]}, credentials: [ghcr]}]
""")
    code, err = run(capsys, "check", "--config", str(path))
    assert code == 2, err
    assert "AWS profile 'does-not-exist' does not exist" in err and err.count("\n") == 1


@pytest.mark.parametrize(("flags", "says"), [
    (["--instance", "a:b"], "must be an installation name"),
    (["--instance", "Upper"], "must be an installation name"),
    (["--instance", "a", "--all-instances"], "not allowed with argument"),
])
def test_a_bad_uninstall_instance_is_one_line_and_exit_2(
        capsys: pytest.CaptureFixture[str], flags: list[str], says: str) -> None:
    code, err = run(capsys, "uninstall", *flags)
    assert code == 2
    assert err.count("\n") == 1 and says in err, err


def test_uninstall_takes_the_default_instance_unless_told() -> None:
    parse = cli.parser().parse_args
    assert (parse(["uninstall"]).instance, parse(["uninstall"]).all_instances) == (
        "default", False)
    assert parse(["uninstall", "--instance", "ns.rel"]).instance == "ns.rel"
    assert parse(["uninstall", "--all-instances"]).all_instances is True
