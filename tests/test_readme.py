"""Every example of the README runs, as written (docs never drift)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pg_server import cluster, url  # noqa: F401 - fixtures: a throwaway PostgreSQL

README = Path(__file__).parent.parent / "README.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bin_dir = os.path.dirname(sys.executable)
    monkeypatch.setenv("PATH", bin_dir + os.pathsep + os.environ["PATH"])
    return tmp_path


def library_blocks() -> list[str]:
    found = [code for code in blocks("python") if not code.startswith("# needs: server")]
    assert found, "no Python example found in the README"
    return found


def sections() -> list[tuple[str, list[str], list[str]]]:
    """(heading, library Python blocks, console blocks) of each `## ` section: an
    example is a section's blocks, and runs on its own in a fresh directory."""
    found = []
    for part in re.split(r"^## ", README.read_text(), flags=re.M)[1:]:
        python = [code for code in re.findall(r"```python\n(.*?)```", part, flags=re.S)
                  if not code.startswith("# needs: server")]
        console = re.findall(r"```console\n(.*?)```", part, flags=re.S)
        found.append((part.splitlines()[0], python, console))
    return found


def fresh(tmp_path, heading: str) -> Path:
    directory = tmp_path / re.sub(r"\W+", "-", heading).strip("-").lower()
    directory.mkdir()
    os.chdir(directory)
    return directory


def test_python_examples_run(workdir):
    """Each library example on its own, in a fresh directory and namespace."""
    assert library_blocks()
    for number, code in enumerate(library_blocks()):
        fresh(workdir, f"python-{number}")
        exec(compile(code, str(README), "exec"), {})


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    from serving import running_server

    with running_server(tmp_path_factory.mktemp("readme") / "demo.sqlite", "--demo") as url:
        yield url


def test_graphql_examples_run_against_the_demo_server(demo_server):
    import httpx

    documents = blocks("graphql")
    assert documents
    for document in documents:
        body = httpx.post(f"{demo_server}/v1/graphql", json={"query": document}).json()
        assert "errors" not in body, (document, body)
        assert body["data"] and all(value is not None for value in body["data"].values())


def test_server_python_examples_run(demo_server):
    server_blocks = [code for code in blocks("python") if code.startswith("# needs: server")]
    assert server_blocks
    for code in server_blocks:
        exec(compile(code, str(README), "exec"), {"URL": demo_server})


def test_console_examples_print_what_the_readme_shows(workdir):
    """Each section's console examples, after its own Python examples only, in a fresh
    directory; their output lines as shown, in order (`...` alone: any lines)."""
    ran = 0
    for heading, python, console in sections():
        console = [b for b in console if "$PG_URL" not in b]
        if console:
            run_section(workdir, heading, python, console)
            ran += 1
    assert ran


def test_postgres_console_examples_run_against_a_real_postgresql(workdir, url, monkeypatch):
    monkeypatch.setenv("PG_URL", url)
    postgres = [(h, p, [b for b in c if "$PG_URL" in b]) for h, p, c in sections()]
    postgres = [section for section in postgres if section[2]]
    assert postgres
    for heading, python, console in postgres:
        run_section(workdir, heading, python, console)


def run_section(workdir, heading: str, python: list[str], console: list[str]) -> None:
    fresh(workdir, heading)
    for code in python:
        exec(compile(code, str(README), "exec"), {})
    run_console(console)


def run_console(console_blocks: list[str]) -> None:
    for block in console_blocks:
        block_commands = list(commands(block))
        assert block_commands, f"a console block without a command: {block!r}"
        for command, expected in block_commands:
            result = subprocess.run(command, shell=True, capture_output=True, text=True)
            assert result.returncode == 0, (command, result.stderr)
            output = result.stdout.splitlines()
            assert shown(expected, output), (command, expected, output)


def shown(expected: list[str], output: list[str]) -> bool:
    """The output is the expected lines in order, each `...` inside a line any text,
    a line of `...` alone any number of lines."""
    if not expected:
        return not output
    if expected[0].strip() == "...":
        return any(shown(expected[1:], output[start:]) for start in range(len(output) + 1))
    pattern = ".*".join(map(re.escape, expected[0].split("...")))
    return bool(output) and re.fullmatch(pattern, output[0]) is not None and shown(
        expected[1:], output[1:])


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
