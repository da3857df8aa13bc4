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


@pytest.mark.parametrize("path", [p for p in PATHS if p], ids=" ".join)
def test_help_says_what_the_command_is_for_and_what_each_choice_means(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 28, finding 10: `vaka serve --help` printed only its usage; `{on,off}` was not explained."""
    with pytest.raises(SystemExit):
        main([*path, "--help"])
    out = capsys.readouterr().out
    _usage, _, rest = out.partition("\n\n")
    description = rest.split("\n\n")[0].strip()
    assert description, f"vaka {' '.join(path)} --help has no description"
    assert not description.startswith(("positional arguments", "options")), description
    parser = build_parser()
    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    for action in parser._actions:
        if action.choices and not isinstance(action, argparse._SubParsersAction):
            assert action.help, f"vaka {' '.join(path)}: {action.dest} {sorted(action.choices)} has no explanation"
