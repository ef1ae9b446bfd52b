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


def test_python_examples_run(workdir):
    namespace: dict = {}
    for code in library_blocks():
        exec(compile(code, str(README), "exec"), namespace)


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
    for code in library_blocks():
        exec(compile(code, str(README), "exec"), {})
    console_blocks = [b for b in blocks("console") if "$PG_URL" not in b]
    assert console_blocks
    run_console(console_blocks)


def test_postgres_console_examples_run_against_a_real_postgresql(workdir, url, monkeypatch):
    for code in library_blocks():
        exec(compile(code, str(README), "exec"), {})
    monkeypatch.setenv("PG_URL", url)
    postgres_blocks = [b for b in blocks("console") if "$PG_URL" in b]
    assert postgres_blocks
    run_console(postgres_blocks)


def run_console(console_blocks: list[str]) -> None:
    for block in console_blocks:
        block_commands = list(commands(block))
        assert block_commands, f"a console block without a command: {block!r}"
        for command, expected in block_commands:
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
