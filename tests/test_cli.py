"""The command line as a user meets it: ``--help`` shows every default, a bad flag is one line
and exit 2, a broken space file names the line and column. Nothing here trains or starts Ray."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest
from search_fixtures import TWO_STAGE_SPACE

from mdsearch.cli import build_parser, main
from mdsearch.space import SpaceError, load_space


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("mdsearch has no subcommands")


def _help_of(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The flag's help as --help prints it (``%(default)s`` expanded), on one line."""
    text = parser._get_formatter()._expand_help(action) if action.help else ""
    return " ".join(text.split())


def _shown(value: object) -> str:
    """How a help text writes a default: floats short, sequences comma-separated."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value))
    return str(value)


@pytest.mark.parametrize("command", sorted(_commands()))
def test_every_flag_with_a_default_shows_it_in_help(command):
    parser = _commands()[command]
    missing = []
    for action in parser._actions:
        if not action.option_strings or isinstance(action, argparse._HelpAction):
            continue
        if action.default is None or action.default is False:
            continue
        text = _help_of(parser, action)
        # SUPPRESS: the value comes from a saved run unless typed; store_const (--no-augment)
        # says in words what happens without the flag. Both must still say "default".
        literal = action.default != argparse.SUPPRESS and action.nargs != 0
        if "default" not in text or (literal and _shown(action.default) not in text):
            missing.append(f"{action.option_strings[0]} ({action.default!r}): {text!r}")
    assert not missing, f"mdsearch {command} --help hides defaults: {missing}"


def test_the_flags_the_issue_named_show_their_defaults(capsys):
    wanted = {
        "run": ["--seed", "--optimizer", "--schedule", "--early-stop", "--max-concurrent"],
        "train": ["--schedule", "--threads", "--no-augment"],
        "proxy-check": ["--train-subset", "--val-subset", "--weight-decay", "--optimizer"],
        "show": ["--threads", "--num-classes"],
    }
    commands = _commands()
    for command, flags in wanted.items():
        parser = commands[command]
        by_flag = {s: a for a in parser._actions for s in a.option_strings}
        for flag in flags:
            assert "default" in _help_of(parser, by_flag[flag]), f"{command} {flag}"


def test_data_and_cache_flags_explain_their_forms():
    run = _commands()["run"]
    by_flag = {s: a for a in run._actions for s in a.option_strings}
    assert ",task=subtype" in _help_of(run, by_flag["--data"])
    assert "MDSEARCH_CACHE_DIR" in _help_of(run, by_flag["--cache-dir"])


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["run", "--sampler", "foo"],
         "mdsearch run: error: --sampler: 'foo' is not one of tpe, nsga2, random, grid"),
        (["run", "--optimizer", "lion"],
         "mdsearch run: error: --optimizer: 'lion' is not one of adamw, sgd"),
        (["train", "x", "--schedule", "step"],
         "mdsearch train: error: --schedule: 'step' is not one of cosine, constant"),
        (["run", "--budget", "many"], "mdsearch run: error: --budget: 'many' is not a whole number"),
        (["run", "--no-such-flag"], "mdsearch run: error: unrecognized arguments: --no-such-flag"),
        (["nosuch"], "mdsearch: error: COMMAND: 'nosuch' is not one of run,"),
    ],
)  # fmt: skip
def test_a_bad_flag_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys, argv, line):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith(line) and "\n" not in err, err
    assert "usage:" not in err and captured.out == ""
    assert list(tmp_path.iterdir()) == []


def test_no_command_lists_the_commands(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "usage: mdsearch" in err
    for command in ("run", "report", "export", "train", "proxy-check"):
        assert f"\n    {command}" in err, command


# Every --help in a fresh interpreter; prints, per command line, the heavy libraries it imported.
_HELP_IMPORTS = """
import contextlib, io, json, sys
from mdsearch.cli import main
heavy = ("pandas", "torch", "ray")
found = {}
for argv in json.loads(sys.argv[1]):
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            main(argv)
    except SystemExit:
        pass
    found[" ".join(argv)] = [m for m in heavy if m in sys.modules]
print(json.dumps(found))
"""


def test_help_imports_no_pandas_torch_or_ray():
    # --help is the first thing a user runs: it should answer in well under a second, not after
    # seconds of imports (pandas, torch and Ray together take several on a laptop).
    argvs = [["--help"]] + [[command, "--help"] for command in sorted(_commands())]
    done = subprocess.run(
        [sys.executable, "-c", _HELP_IMPORTS, json.dumps(argvs)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    found = json.loads(done.stdout)
    assert set(found) == {" ".join(argv) for argv in argvs}
    assert not any(found.values()), found


def test_help_still_shows_the_whole_usage(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: mdsearch run") and "--sampler" in out


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        # An unclosed list: the parser notices at the next line's ':'.
        ("space.yaml", "stages:\n  1: [base, k3.5s1:1\n  5: [base]\n", "line 3, column 4"),
        ("space.yaml", "stages:\n\t1: [base]\n", "line 2, column 1"),
        ("space.json", '{"stages": {"1": [}}', "line 1, column 19"),
    ],
)
def test_a_broken_space_file_names_its_line_and_column(tmp_path, capsys, name, text, where):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(SpaceError) as info:
        load_space(path)
    assert str(info.value).startswith(f"{path}, {where}: not valid")
    assert main(["space", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{path}, {where}" in err and "\n" not in err


def test_a_valid_space_file_still_loads(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(TWO_STAGE_SPACE)
    assert load_space(path).size == 4
