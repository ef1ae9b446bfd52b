"""Issue 16, item 7: the README ships what it refers to, documents every command with
an example (run by test_readme.py), names the venv's python for benchmarks; the
licence pyproject.toml names is there; run_all.py leaves the tracked RESULTS.md be."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from clustore_lite.cli import main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_every_link_of_the_readme_is_inside_the_repository():
    links = re.findall(r"\]\(([^)#\s]+)[^)]*\)", README)
    local = [link for link in links if not re.match(r"[a-z]+://", link)]
    assert local
    outside = [link for link in local if (ROOT / link).resolve().parts[:len(ROOT.parts)] != ROOT.parts]
    assert not outside, f"links leaving the repository: {outside}"
    missing = [link for link in local if not (ROOT / link).exists()]
    assert not missing, f"links to files the repository does not ship: {missing}"
    assert "../shared" not in README


def test_the_licence_pyproject_names_is_shipped():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == {"text": "MIT"}
    licence = (ROOT / "LICENSE").read_text()
    assert licence.startswith("MIT License") and "the clustore-lite authors" in licence


def test_the_cli_section_shows_every_command():
    section = README.split("## On the command line")[1].split("\n## ")[0]
    examples = "\n".join(re.findall(r"```console\n(.*?)```", README, flags=re.S))
    for name in main.commands:
        assert f"`{name}" in section or f", `{name}`" in section, f"{name} not in the CLI section"
        if name != "serve":  # runs until stopped: test_readme.py serves the demo with it
            assert f"$ clustore-lite {name} " in examples, f"no console example runs {name}"


def test_benchmark_commands_name_the_venvs_python():
    commands = [line for block in re.findall(r"```sh\n(.*?)```", README, flags=re.S)
                for line in block.splitlines() if "benchmarks/" in line]
    assert commands and all(line.startswith(".venv/bin/python benchmarks/") for line in commands)


def test_run_all_leaves_the_tracked_results_alone_by_default(tmp_path):
    tracked = ROOT / "benchmarks" / "RESULTS.md"
    before = tracked.read_bytes()
    tiny = "--rounds 1 --warmup 0 --chunk-rows 1000 --columns 2"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run_all.py"), "-q", "--dir", str(tmp_path),
         "--ingest", f"{tiny} --rows 2000 --mixed-rows 0",
         "--read", f"{tiny} --rows 2000 --mixed-rows 0 --chunk-reads 2",
         "--import", f"{tiny} --chunks 2"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "# Benchmark results" in result.stdout
    assert tracked.read_bytes() == before
