"""The ``kappa`` command line: one exit-status policy for every command, and the wheel that carries
it holds the product only and works from a fresh virtualenv, outside the checkout."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from kappa import cli
from kappa.errors import KappaError, Refused, Unavailable

REPO = Path(__file__).resolve().parents[3]
PRODUCT = {"kappa", "schemas", "connectors", "streaming", "batch_replay", "monitoring"}


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every runnable command path (``("connector", "cdc")``, ``("run",)``, ...) of the parser."""
    found = []
    for action in parser._subparsers._group_actions if parser._subparsers else []:
        for name, sub in action.choices.items():
            found += _commands(sub, (*prefix, name)) if sub._subparsers else [(*prefix, name)]
    return found


def _parser_running(run) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kappa")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("try").set_defaults(run=run)
    return parser


def _raise(exc: BaseException):
    def run(_args):
        raise exc
    return run


def test_every_error_of_the_platform_maps_to_one_exit_status(capsys):
    assert cli.execute(_parser_running(lambda _: None), ["try"]) == 0
    assert cli.execute(_parser_running(lambda _: 3), ["try"]) == 3  # a command's own status (rebuild's check)
    assert cli.execute(_parser_running(_raise(Refused("--from is required"))), ["try"]) == 2
    assert capsys.readouterr().err == "kappa try: refused: --from is required\n"  # one line, no traceback
    assert cli.execute(_parser_running(_raise(Unavailable("Kafka at 127.0.0.1:19092"))), ["try"]) == 1
    assert capsys.readouterr().err == "kappa try: failed: Kafka at 127.0.0.1:19092\n"
    assert cli.execute(_parser_running(_raise(KappaError("the job gave up"))), ["try"]) == 1
    assert cli.execute(_parser_running(_raise(KeyboardInterrupt())), ["try"]) == 130
    with pytest.raises(ZeroDivisionError):  # a bug keeps its traceback
        cli.execute(_parser_running(_raise(ZeroDivisionError())), ["try"])


def test_log_levels_take_any_case_and_refuse_the_rest(capsys):
    assert cli.parser().parse_args(["run", "x.toml", "--log-level", "debug"]).log_level == "DEBUG"
    with pytest.raises(SystemExit) as refused:
        cli.parser().parse_args(["backfill", "--log-level", "loud"])
    assert refused.value.code == 2 and "'loud' is not a log level" in capsys.readouterr().err


def test_one_spelling_per_concept_across_the_commands():
    """A pipeline is --pipeline (or the positional file), metrics are served on --metrics-port, a
    serving version is --serving-version, wherever a command takes one; older spellings are aliases
    of the same option, never a second one."""
    root = cli.parser()
    for path in _commands(root):
        sub = root
        for name in path:
            sub = sub._subparsers._group_actions[0].choices[name]
        for action in sub._actions:
            options = set(action.option_strings)
            assert not options & {"--job"} or "--pipeline" in options, (path, options)
            assert not options & {"--version"} or "--serving-version" in options, (path, options)
            assert action.dest not in ("pipeline", "pipelines") or not options or "--pipeline" in options
            assert "metrics" not in (action.help or "") or not options & {"--port"} or "--metrics-port" in options


def test_the_wheel_holds_the_product_and_kappa_runs_from_a_fresh_venv(tmp_path):
    source = tmp_path / "source"  # a copy of what git tracks, so the build leaves the checkout clean
    tracked = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                             capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, tracked):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_bytes((REPO / name).read_bytes())
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                            "-w", str(tmp_path / "dist"), str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = next((tmp_path / "dist").glob("kappa_platform-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == PRODUCT, f"the wheel's top-level packages: {sorted(top)}"
    assert {"streaming/scheduler_pools.xml", "streaming/pipelines/orders.toml", "schemas/subjects.toml",
            "connectors/cdc/example.toml"} <= set(names)  # what the product reads beside its code

    fresh = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(fresh)
    python = fresh / "bin" / "python"
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
                                str(wheel)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr[-3000:]
    # The dependencies from this venv's site-packages, as a plain path: its .pth files (the checkout's
    # editable install among them) are not read, so the product comes from the wheel alone.
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    ours = next(p for p in sys.path if p.endswith("site-packages") and Path(p, "pyspark").is_dir())
    Path(site, "dependencies.pth").write_text(ours + "\n")
    outside = tmp_path / "elsewhere"
    outside.mkdir()

    clean = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # no PYTHONPATH: nothing of the checkout

    def kappa(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(fresh / "bin" / "kappa"), *args], cwd=outside, capture_output=True, text=True,
                              timeout=60, env=clean)

    where = subprocess.run([str(python), "-c", "import kappa, streaming; print(kappa.__file__, streaming.__file__)"],
                           cwd=outside, capture_output=True, text=True, check=True, env=clean).stdout
    assert str(REPO) not in where and where.count(site) == 2, where
    assert kappa("--version").stdout.strip() == "kappa 0.1.0"
    shown = kappa("--help")
    assert shown.returncode == 0 and "exit status" in shown.stdout, shown.stderr
    for command in _commands(cli.parser()):
        helped = kappa(*command, "--help")
        assert helped.returncode == 0 and helped.stdout.startswith(f"usage: kappa {' '.join(command)}"), \
            (command, helped.stderr[-2000:])


def test_a_misspelt_setting_stops_a_command_before_it_starts_anything(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAPPA_")}
    refused = subprocess.run([sys.executable, "-m", "kappa", "run", "orders"], cwd=REPO, capture_output=True, text=True,
                             timeout=120, env={**env, "KAPPA_KAFKA__BOOTSTRAP_SERVER": "prod:9092"})
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert refused.stderr.strip() == ("kappa run: refused: KAPPA_KAFKA__BOOTSTRAP_SERVER is not a setting; did you "
                                      "mean KAPPA_KAFKA__BOOTSTRAP_SERVERS?")
    settings_file = tmp_path / "prod.toml"
    settings_file.write_text('[kafka]\nbootstrap_server = "prod:9092"\n')
    refused = subprocess.run([sys.executable, "-m", "kappa", "backfill", "--pipeline", "orders", "--from", "earliest"],
                             cwd=REPO, capture_output=True, text=True, timeout=120,
                             env={**env, "KAPPA_CONFIG": str(settings_file)})
    assert refused.returncode == 2 and "[kafka] bootstrap_server is not a setting; did you mean bootstrap_servers" \
        in refused.stderr, refused.stderr[-2000:]
