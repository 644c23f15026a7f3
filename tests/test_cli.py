"""The command line, as a user runs it: index, search, eval-retrieval on a corpus the test writes."""

import json
import os
import subprocess
import sys

import pytest


def odqa(*args, cwd=None):
    env = {**os.environ, "ODQA_QUIET": "1"}
    return subprocess.run(
        [sys.executable, "-m", "odqa", *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env
    )


@pytest.fixture
def index_dir(corpus_file, tmp_path):
    out = tmp_path / "idx"
    run = odqa("index", "--corpus", corpus_file, "--out", out, "--title", "--cache-dir", tmp_path / "cache")
    assert run.returncode == 0, run.stderr
    assert "indexed 6 documents" in run.stdout
    return out


def test_version_and_help():
    from odqa import __version__

    run = odqa("--version")
    assert run.returncode == 0 and run.stdout == f"odqa {__version__}\n"
    run = odqa()
    assert "Usage" in run.stdout and "ask" in run.stdout and "--version" in run.stdout


def test_search_prints_passages(index_dir):
    run = odqa("search", "--index", index_dir, "훈민정음을 창제한 왕은?", "-k", "2", "--json")
    assert run.returncode == 0, run.stderr
    hits = [json.loads(line) for line in run.stdout.splitlines()]
    assert hits[0]["title"] == "세종" and hits[0]["rank"] == 1 and hits[0]["doc_ids"] == ["5"]
    table = odqa("search", "--index", index_dir, "김치")
    assert table.returncode == 0 and "김치" in table.stdout


def test_eval_retrieval_writes_json(index_dir, squad_file, tmp_path):
    out = tmp_path / "eval.json"
    run = odqa("eval-retrieval", "--index", index_dir, "--questions", squad_file, "-k", "1,5", "--out", out)
    assert run.returncode == 0, run.stderr
    result = json.loads(out.read_text())
    assert result["k"] == [1, 5] and result["has_answer"]["questions"] == 3
    assert "has_answer" in run.stdout


def test_index_from_config_file(corpus_file, tmp_path):
    config = tmp_path / "index.json"
    config.write_text(json.dumps({"analyzer": {"name": "ngram", "n": 2}, "scoring": {"method": "bm25+", "k1": 1.0}}))
    out = tmp_path / "idx2"
    run = odqa("index", "--corpus", corpus_file, "--out", out, "--config", config, "--b", "0.5", "--no-cache")
    assert run.returncode == 0, run.stderr
    saved = json.loads((out / "config.json").read_text())
    assert saved["analyzer"]["name"] == "ngram" and saved["scoring"] == {
        "method": "bm25+",
        "k1": 1.0,
        "b": 0.5,
        "delta": 0.5,
        "document_weight": 0.25,
    }


@pytest.mark.parametrize(
    "args,message",
    [
        (["index", "--corpus", "missing.jsonl", "--out", "x"], "file not found: missing.jsonl"),
        (["index", "--corpus", "{corpus}", "--out", "x", "--analyzer", "nori"], "unknown analyzer 'nori'"),
        (["index", "--corpus", "{empty}", "--out", "x"], "no passages"),
        (["search", "--index", "no-such-index", "q"], "index not found: no-such-index"),
        (["search", "--index", "{index}", "   "], "empty query"),
        (["search", "--index", "{index}", "가" * 5000], "query too long"),
        (["search", "--index", "{index}", "김치", "-k", "0"], "k must be"),
        (["eval-retrieval", "--index", "{index}", "--questions", "{corpus}", "-k", "a"], "-k expects numbers"),
    ],
)
def test_bad_input_exits_with_a_named_error(args, message, corpus_file, index_dir, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    args = [a.format(corpus=corpus_file, index=index_dir, empty=empty) for a in args]
    run = odqa(*args, cwd=tmp_path)
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert message in run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "x").exists()


def test_reuse_skips_a_current_index_and_rebuilds_a_changed_one(corpus_file, index_dir, tmp_path):
    run = odqa(
        "index", "--corpus", corpus_file, "--out", index_dir, "--title", "--reuse", "--cache-dir", tmp_path / "cache"
    )
    assert run.returncode == 0 and "up to date" in run.stdout
    run = odqa(
        "index", "--corpus", corpus_file, "--out", index_dir, "--no-title", "--reuse", "--cache-dir", tmp_path / "cache"
    )
    assert run.returncode == 0 and "indexed" in run.stdout


def test_command_modules_import_no_other_command_module():
    """One entry point (`odqa.cli`) gathers the groups; the groups share only `odqa.cli.common`."""
    import ast
    from pathlib import Path

    import odqa.cli

    folder = Path(odqa.cli.__file__).parent
    for module in folder.glob("*.py"):
        if module.name in ("__init__.py", "common.py"):
            continue
        imported = set()
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("odqa.cli"):
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported |= {a.name for a in node.names if a.name.startswith("odqa.cli")}
        assert imported <= {"odqa.cli.common"}, module.name
    names = {c.name or c.callback.__name__.replace("_", "-") for c in odqa.cli.app.registered_commands}
    assert {"index", "search", "train-reader", "index-dense", "ask", "import-model"} <= names


def test_no_option_reads_no_no():
    """A flag that says "no" is one flag, not `--no-cache/--no-no-cache` (issue 14's help text)."""
    from typer.testing import CliRunner

    from odqa.cli import _command_name, app

    names = [_command_name(c) for c in app.registered_commands]
    for group in app.registered_groups:
        names += [f"{group.name} {_command_name(c)}" for c in group.typer_instance.registered_commands]
    assert "index" in names and "runs list" in names
    for name in names:
        result = CliRunner().invoke(app, [*name.split(), "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, name
        assert "--no-no-" not in result.stdout, name
