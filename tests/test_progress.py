"""Progress where no terminal shows a bar: plain lines at an interval, a last line, nothing when quiet."""

from odqa.progress import PlainBar, progress


def test_a_log_gets_plain_lines_and_a_last_one(monkeypatch, capsys):
    monkeypatch.setenv("ODQA_PROGRESS_SECONDS", "0")  # a line at every update
    monkeypatch.delenv("ODQA_QUIET", raising=False)
    with progress(total=3, desc="analyzing", unit="passage") as bar:  # pytest's stderr is not a terminal
        assert isinstance(bar, PlainBar) and bar.disable
        bar.update(2)
        bar.update()
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("analyzing: 2/3 passage, ") and "min left" in lines[0]
    assert lines[-1].startswith("analyzing: 3/3 passage, ") and "done in" in lines[-1]


def test_short_jobs_print_nothing_and_quiet_is_quiet(monkeypatch, capsys):
    monkeypatch.delenv("ODQA_PROGRESS_SECONDS", raising=False)  # one line a minute
    with progress(total=10, desc="reading") as bar:
        bar.update(10)
    monkeypatch.setenv("ODQA_PROGRESS_SECONDS", "0")
    with progress(total=10, desc="reading", quiet=True) as bar:
        bar.update(10)
    with progress(total=10, desc="training", plain=False) as bar:  # the caller prints its own lines
        bar.update(10)
    assert capsys.readouterr().err == ""
