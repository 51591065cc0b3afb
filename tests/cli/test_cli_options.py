"""The command line's flags come from ``lipsync/options.py``: every command has every field of
the groups it declares (``COMMAND_GROUPS``), with the dataclass default, and parses back into
the same ``LipSyncOptions``; the commands form no import cycle."""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from lipsync.cli import COMMANDS
from lipsync.cli.options import COMMAND_GROUPS, REFERENCE_COMMANDS, flag_of, options_from_args, resolved_options
from lipsync.options import GROUPS, SETTING_GROUPS, ClusterOptions, LipSyncOptions
from lipsync.types import Box

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / "lipsync" / "cli"

REQUIRED = {
    "run": ["video.mp4", "voice.wav", "-o", "out.mp4"],
    "batch": ["-o", "out"],
    "segment": ["video.mp4", "voice.wav", "--start", "0", "--end", "1", "-o", "out.mkv"],
}
"""The least each job command needs to parse."""


def parser(command: str) -> argparse.ArgumentParser:
    return importlib.import_module(f"lipsync.cli.{command}").parser()


def parse(command: str, *extra: str) -> argparse.Namespace:
    return parser(command).parse_args([*REQUIRED[command], *extra])


def actions(p: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.dest: a for a in p._actions}


def test_every_job_command_is_declared() -> None:
    assert set(COMMAND_GROUPS) <= {"run", *COMMANDS.values()}
    assert set(REQUIRED) == set(COMMAND_GROUPS) == {"run", "batch", "segment"}


@pytest.mark.parametrize("command", sorted(COMMAND_GROUPS))
def test_each_command_has_every_field_of_its_groups_with_the_dataclass_default(command: str) -> None:
    by_dest = actions(parser(command))
    for group in COMMAND_GROUPS[command]:
        for f in fields(SETTING_GROUPS[group]):
            assert f.name in by_dest, f"{command} lacks {group}.{f.name} ({flag_of(f)})"
            action = by_dest[f.name]
            assert flag_of(f) in action.option_strings, (command, f.name, action.option_strings)
            assert action.default == f.default, f"{command} {flag_of(f)}: {action.default!r} != {f.default!r}"
    assert ("reference" in by_dest) == (command in REFERENCE_COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMAND_GROUPS))
def test_no_flags_give_the_default_options(command: str) -> None:
    assert options_from_args(parse(command), COMMAND_GROUPS[command]) == LipSyncOptions()


@pytest.mark.parametrize("command", ["run", "batch"])
def test_cluster_flags_parse_into_cluster_options_not_the_job(command: str) -> None:
    from lipsync.cli.options import group_from_args

    assert group_from_args(parse(command), "cluster") == ClusterOptions()
    args = parse(command, "--cluster", "local:2", "--workers", "2", "--gpus-per-worker", "0.25",
                 "--cpus-per-worker", "2", "--retries", "1", "--segments", "3")
    got = group_from_args(args, "cluster")
    assert got == ClusterOptions("local:2", 2, 0.25, 2.0, 1, 3)
    assert options_from_args(args, COMMAND_GROUPS[command]) == LipSyncOptions()  # where, never what
    assert "cluster" not in GROUPS and SETTING_GROUPS["cluster"] is ClusterOptions


def test_segment_has_no_source_options() -> None:
    by_dest = actions(parser("segment"))
    assert "source" not in COMMAND_GROUPS["segment"]
    assert not {f.name for f in fields(GROUPS["source"])} & set(by_dest)
    with pytest.raises(SystemExit):
        parse("segment", "--fps", "30")


def test_flags_parse_back_into_their_fields() -> None:
    args = parse("run", "--box", "1", "2", "3", "4", "--pads", "5", "6", "7", "8", "--no-overlap", "--fp16",
                 "--fps", "30", "--face", "closest", "--audio-offset", "-40", "--restore", "gfpgan.pth",
                 "--smooth-window", "3", "--chunk-batches", "2", "--feather", "0.3", "--lossless")
    opts = options_from_args(args, COMMAND_GROUPS["run"])
    assert opts.faces.box == Box(1, 2, 3, 4) and opts.faces.pads == (5, 6, 7, 8)
    assert opts.faces.face_choice == "closest" and opts.faces.smooth_window == 3
    assert opts.run.overlap is False and opts.run.chunk_batches == 2
    assert opts.model.fp16 is True and opts.restore.restore == "gfpgan.pth"
    assert opts.source.fps == 30.0 and opts.sync.audio_offset_ms == -40.0
    assert opts.composite.feather == 0.3 and opts.encode.lossless is True
    assert opts.resolved() == opts  # no reference: resolving changes nothing
    assert options_from_args(parse("run", "--fps", "0"), COMMAND_GROUPS["run"]).source.fps is None  # 0 = own rate


@pytest.mark.parametrize("command", sorted(REFERENCE_COMMANDS))
def test_reference_is_applied_by_resolved(command: str) -> None:
    opts = options_from_args(parse(command, "--reference"), COMMAND_GROUPS[command])
    assert opts.reference and opts.composite.mode == "mouth"  # the flag only; resolved() applies it
    expected = LipSyncOptions(reference=True).resolved()
    got = opts.resolved()
    assert (got.composite.mode, got.faces.smoothing, got.source.length_policy) == (
        expected.composite.mode, expected.faces.smoothing, expected.source.length_policy)
    assert (got.composite.mode, got.faces.smoothing, got.source.length_policy) == ("reference", "reference", "loop")


@pytest.mark.parametrize("command", ["batch", "segment"])
def test_batch_and_segment_take_the_options_they_lacked(command: str) -> None:
    args = parse(command, "--fp16", "--smoothing", "reference", "--blend", "seamless", "--restore", "gfpgan.pth")
    opts = options_from_args(args, COMMAND_GROUPS[command])
    assert opts.model.fp16 and opts.faces.smoothing == "reference"
    assert opts.composite.blend == "seamless" and opts.restore.restore == "gfpgan.pth"


def _imports(path: Path) -> set[str]:
    """The modules (and imported names) ``path`` imports anywhere in it, as absolute names."""
    package = list(path.relative_to(ROOT).parent.parts)
    tree, found = ast.parse(path.read_text()), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            parts = package[: len(package) + 1 - node.level] if node.level else []
            base = ".".join([*parts, node.module] if node.module else parts)
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return found


def test_no_command_imports_another_command_or_the_dispatcher() -> None:
    commands = {f"lipsync.cli.{m}" for m in ("run", *COMMANDS.values())}
    for module in commands:
        imported = _imports(CLI / f"{module.rsplit('.', 1)[1]}.py")
        assert not imported & (commands - {module}), module
        assert "lipsync.cli" not in imported, f"{module} imports the dispatcher"


def test_nothing_outside_cli_imports_cli() -> None:
    for path in (ROOT / "lipsync").rglob("*.py"):
        if CLI in path.parents or path.name == "__main__.py":
            continue
        assert not {m for m in _imports(path) if m == "lipsync.cli" or m.startswith("lipsync.cli.")}, path


def test_the_main_job_does_not_load_the_other_commands() -> None:
    code = ("import sys, lipsync.cli.run as r; r.parser(); "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('lipsync.cli.', 'lipsync.engine.batch')))))")
    out = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True, cwd=ROOT,
                         check=True).stdout
    loaded = json.loads(out)
    assert "lipsync.cli.run" in loaded
    assert not [m for m in loaded if m.rsplit(".", 1)[-1] in ("batch", "segment", "convert", "download")], loaded


@pytest.mark.parametrize("command", sorted(REFERENCE_COMMANDS))
def test_reference_says_which_given_flags_it_overrides(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [*REQUIRED[command], "--reference", "--precision", "fastest", "--mode", "reference"]
    opts = resolved_options(parser(command).parse_args(argv), COMMAND_GROUPS[command], argv)
    assert opts.model.precision == "exact" and opts.composite.mode == "reference"
    err = capsys.readouterr().err
    assert err == "note: --reference runs the original's settings; ignored: --precision fastest\n"
    argv = [*REQUIRED[command], "--reference"]  # nothing given that it overrides: nothing said
    resolved_options(parser(command).parse_args(argv), COMMAND_GROUPS[command], argv)
    assert capsys.readouterr().err == ""
