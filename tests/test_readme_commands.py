"""Every `odqa …` line in the README's shell blocks (and every `$(ODQA) …` recipe of the Makefile)
names a command odqa has and options that command takes: an example that was right when written
fails here when a command or option is renamed."""

import re
import shlex
from pathlib import Path

import pytest
import typer

from odqa.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def fenced_blocks(text: str, languages: tuple[str, ...]) -> list[str]:
    """The bodies of the ``` blocks whose language is one of `languages` ("" for a bare fence)."""
    blocks, body, language = [], None, ""
    for line in text.splitlines():
        if line.startswith("```"):
            if body is None:
                body, language = [], line[3:].strip()
            else:
                if language in languages:
                    blocks.append("\n".join(body))
                body = None
        elif body is not None:
            body.append(line)
    return blocks


def shell_blocks(text: str) -> list[str]:
    """The bodies of the ```bash (or bare ```) blocks, continuation lines joined."""
    return [block.replace("\\\n", " ") for block in fenced_blocks(text, ("", "bash", "sh", "console"))]


def odqa_commands(text: str, program: str = "odqa") -> list[list[str]]:
    """The words of each invocation of `program` (what follows it, up to a pipe, `&&`, `;` or a
    comment) in the shell blocks of a README."""
    return invocations(shell_blocks(text), program)


def invocations(blocks: list[str], program: str) -> list[list[str]]:
    commands = []
    for block in blocks:
        for line in block.splitlines():
            for part in re.split(r";|&&|\|", line.split(" #")[0]):  # one command after another on a line
                found = re.search(rf"(?:^|\s){re.escape(program)}\s(.*)", part)
                if found:
                    commands.append(shlex.split(found.group(1)))
    return commands


def unknown_words(words: list[str], root) -> list[str]:
    """Subcommands and options of one invocation that odqa does not have."""
    command, path, i = root, [], 0
    while hasattr(command, "list_commands") and i < len(words) and not words[i].startswith("-"):
        sub = command.get_command(None, words[i])
        if sub is None:
            return [f"command {' '.join([*path, words[i]])!r}"]
        command, path, i = sub, [*path, words[i]], i + 1
    options = {name for param in command.params for name in [*param.opts, *param.secondary_opts]}
    flags = [w.split("=")[0] for w in words[i:] if re.match(r"-{1,2}[a-zA-Z]", w)]
    return [f"{' '.join(path)} {flag}" for flag in flags if flag not in options | {"--help"}]


def test_every_odqa_command_in_the_readme_exists_with_its_options():
    root = typer.main.get_command(app)
    commands = odqa_commands(README.read_text(encoding="utf-8"))
    assert len(commands) > 40  # the README's examples were found
    problems = [(" ".join(words)[:80], unknown_words(words, root)) for words in commands]
    assert [p for p in problems if p[1]] == []


def test_every_odqa_command_in_the_makefile_exists_with_its_options():
    root = typer.main.get_command(app)
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8").replace("\\\n", " ")
    commands = invocations([makefile], "$(ODQA)")
    assert len(commands) >= 7 and {words[0] for words in commands} >= {"index", "ask", "train-reader"}
    problems = [(words, unknown_words(words, root)) for words in commands]
    assert [p for p in problems if p[1]] == []


def test_a_renamed_option_or_command_is_caught():
    root = typer.main.get_command(app)
    text = "```bash\nodqa search --index idx --top 5 '질문'   # a comment\nodqa serch --index idx\n```\n"
    assert [unknown_words(words, root) for words in odqa_commands(text)] == [["search --top"], ["command 'serch'"]]


@pytest.mark.slow  # trains the tiny reader the examples ask
def test_the_readme_python_examples_run_as_written(
    corpus_file, korean_docs_index, korean_reader, tmp_path, monkeypatch, capsys
):
    # the README's paths, here: docs.jsonl, indexes/kowiki-bm25 and runs/ko-reader
    (tmp_path / "indexes").mkdir()
    (tmp_path / "runs").mkdir()
    (tmp_path / "indexes" / "kowiki-bm25").symlink_to(korean_docs_index)
    (tmp_path / "runs" / "ko-reader").symlink_to(korean_reader)
    monkeypatch.chdir(tmp_path)
    blocks = fenced_blocks(README.read_text(encoding="utf-8"), ("python",))
    assert len(blocks) == 3
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("1 ") and " 세종 " in printed[0]  # the best passage: the article 세종
    *answer, title, start, end = printed[-2].split()  # the pipeline's answer: text, title, offsets
    assert answer and title == "세종" and 0 <= int(start) < int(end)
    answer, context_index, start, end = printed[-1].split()  # the reader's: a span of the first passage
    passage = "세종은 조선의 제4대 왕이다. 훈민정음을 창제하였다."  # the README's first passage
    assert context_index == "0" and passage[int(start) : int(end)] == answer
    # (the tiny reader's answers are not the point: the README's calls and what they print are)
