"""Every example of the README runs, as written (docs never drift)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).parent.parent / "README.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bin_dir = os.path.dirname(sys.executable)
    monkeypatch.setenv("PATH", bin_dir + os.pathsep + os.environ["PATH"])
    return tmp_path


def test_python_examples_run(workdir):
    namespace: dict = {}
    for code in blocks("python"):
        exec(compile(code, str(README), "exec"), namespace)


def test_console_examples_print_what_the_readme_shows(workdir):
    for code in blocks("python"):
        exec(compile(code, str(README), "exec"), {})
    for block in blocks("console"):
        for command, expected in commands(block):
            result = subprocess.run(command, shell=True, capture_output=True, text=True)
            assert result.returncode == 0, (command, result.stderr)
            output = result.stdout.splitlines()
            for line in expected:
                pattern = ".*".join(map(re.escape, line.split("...")))
                assert any(re.fullmatch(pattern, got) for got in output), (command, line, output)


def commands(block: str):
    """(command, expected output lines) for each `$ command` of a console block."""
    current, expected = None, []
    for line in block.splitlines():
        if line.startswith("$ "):
            if current:
                yield current, expected
            current, expected = line[2:], []
        elif line.strip():
            expected.append(line)
    if current:
        yield current, expected
