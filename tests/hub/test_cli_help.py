"""Every `vaka` command and subcommand answers `--help` with its usage, found by walking the argument parser.

Commands added later are covered without touching this file: the list is read from `build_parser()`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from hub.cli import build_parser, main


def command_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path of the parser tree: (), ("serve",), ("site", "load"), …"""
    paths = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                paths.extend(command_paths(child, (*prefix, name)))
    return paths


PATHS = command_paths(build_parser())


def test_the_walk_finds_nested_commands() -> None:
    assert ("simulate",) in PATHS
    assert ("site", "load") in PATHS
    assert len(PATHS) > 10


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "vaka")
def test_help_prints_usage_and_exits_zero(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*path, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: {' '.join(('vaka', *path))}")
    assert "-h, --help" in out


def test_simulate_help_from_the_shell_shows_the_rate_with_its_percent_sign() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hub.cli", "simulate", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "below 15 %" in result.stdout
