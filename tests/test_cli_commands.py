"""Issue 16, item 6: the command line's conventions (sqlite-utils' and Datasette's are
the models): -h, help for every option, one line per command, --owner, ls, rename,
delete, create-user, create-org, query, progress bars on a terminal only, shell
completion, a hint when an id is not a UUID; and --demo on a store holding data."""

import json
import os
import subprocess
import sys

import click
from click.testing import CliRunner
import pyarrow as pa
import pytest

import clustore_lite
from clustore_lite.cli import main

CLI = [sys.executable, "-m", "clustore_lite"]


def run(*args, check=True, env=None, input=None):
    result = subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True,
                            env=env, input=input)
    if check and result.returncode != 0:
        raise AssertionError(result.stderr)
    return result


def invoke(*args, check=True, input=None):
    """The command run in this process (click's runner), as `run` would."""
    result = CliRunner().invoke(main, [*map(str, args)], input=input)
    if check and result.exit_code != 0:
        raise AssertionError(result.output, result.exception)
    result.returncode = result.exit_code
    return result


def test_help_lists_every_command_in_one_line_and_every_option_has_help():
    listed = run("-h").stdout
    commands = listed.split("Commands:")[1].strip().splitlines()
    assert sorted(line.split()[0] for line in commands) == sorted(main.commands)
    assert not [line for line in commands if line.rstrip().endswith("...")]
    for name in ("import", "ls", "query", "create-user", "create-org", "rename", "delete"):
        assert name in main.commands
    missing = [f"{name} {param.opts[0]}" for name, command in main.commands.items()
               for param in command.params
               if isinstance(param, click.Option) and not param.help]
    assert not missing, f"options without help: {missing}"
    assert "import [OPTIONS] DB FILE" in run("import", "-h").stdout


def test_manage_a_store_from_the_shell(tmp_path):
    run = invoke  # in this process: the same commands, without a Python start per command
    db, source = tmp_path / "db.sqlite", tmp_path / "points.csv"
    source.write_text("x,y\n1,2\n3,4\n")
    user_line = run("create-user", db, "ana", "--email", "ana@example.org").stdout
    assert user_line.startswith("user ") and user_line.strip().endswith(" ana")
    ana_id = user_line.split()[1]
    run("create-user", db, "bob")
    run("create-org", db, "lumen", "--owner", "ana")
    run("import", db, source, "--org", "lumen", "--dataset", "points", "--owner", "ana", "-q")
    run("import", db, source, "--org", "other", "--dataset", "hidden", "--owner", "bob", "-q")
    with clustore_lite.open(db) as store:
        [points] = store.datasets.list(name="points")
        assert points.owner_id == ana_id
        assert store.organizations.list(name="other")[0].owner_id is not None
    orgs = json.loads(run("ls", db, "--json").stdout)
    assert [(o["name"], o["datasets"], o["owner"]) for o in orgs] == [
        ("lumen", 1, "ana"), ("other", 1, "bob")]
    assert "points  2 rows x 2 columns" in run("ls", db, "lumen").stdout
    assert run("rename", db, "lumen/points", "measures").stdout.startswith("renamed dataset")
    listed = json.loads(run("ls", db, "lumen", "--json").stdout)
    assert [d["name"] for d in listed] == ["measures"]

    asked = run("query", db, "query ($n: String!) { datasets(where: {name: {_eq: $n}}) "
                "{ name dataframe { rows } } }", "--var", "n=measures")
    assert json.loads(asked.stdout) == {"data": {"datasets": [
        {"name": "measures", "dataframe": {"rows": 2}}]}}
    as_ana = json.loads(run("query", db, "{ datasets { name } }", "--as-user", "ana").stdout)
    assert as_ana == {"data": {"datasets": [{"name": "measures"}]}}  # not bob's
    document = tmp_path / "q.graphql"
    document.write_text("{ organizations(order_by: {name: asc}) { name } }")
    assert len(json.loads(run("query", db, f"@{document}").stdout)["data"]["organizations"]) == 2
    bad = run("query", db, "{ datasets { nope } }", check=False)
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["errors"][0]["extensions"]["code"] == "validation-failed"

    refused = run("delete", db, "lumen/measures", check=False, input="n\n")
    assert refused.returncode != 0
    assert run("delete", db, "lumen/measures", "--yes").stdout.startswith("deleted dataset")
    with clustore_lite.open(db) as store:
        assert [d.name for d in store.datasets.list()] == ["hidden"]


def test_an_id_that_is_not_a_uuid_gets_a_hint(tmp_path):
    db = tmp_path / "db.sqlite"
    with clustore_lite.open(db) as store:
        store.datasets.create(store.organizations.create("lumen").id, "points", {"x": [1]})
    result = run("export", db, "points", tmp_path / "out.csv", check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "not a dataset id" in result.stderr and "ORGANIZATION/NAME" in result.stderr
    (tmp_path / "in.csv").write_text("x\n1\n")
    missing = run("import", db, tmp_path / "in.csv", "--org", "lumen", "--dataset", "d",
                  "--owner", "nobody", check=False)
    assert missing.returncode == 1 and "no user named 'nobody'" in missing.stderr


def test_progress_bars_only_on_a_terminal(tmp_path):
    db, source = tmp_path / "db.sqlite", tmp_path / "in.csv"
    source.write_text("x\n" + "1\n" * 1000)
    result = run("import", db, source, "--org", "o", "--dataset", "d")  # stderr is a pipe
    assert "\r" not in result.stderr and "it/s" not in result.stderr and "B/s" not in result.stderr


def test_shell_completion_is_documented_and_works():
    env = {**os.environ, "_CLUSTORE_LITE_COMPLETE": "bash_source"}
    script = subprocess.run([os.path.join(os.path.dirname(sys.executable), "clustore-lite")],
                            capture_output=True, text=True, env=env).stdout
    assert "complete" in script and "_clustore_lite_completion" in script
    assert "_CLUSTORE_LITE_COMPLETE=bash_source" in run("-h").stdout


def test_demo_refuses_a_store_that_holds_other_data(tmp_path):
    from clustore_lite import demo

    db = tmp_path / "db.sqlite"
    with clustore_lite.open(db) as store:
        store.organizations.create("mine")
        with pytest.raises(clustore_lite.InvalidValue, match="--demo fills a new store"):
            demo.fill(store)
        assert store.organizations.count() == 1
    fresh = tmp_path / "demo.sqlite"
    with clustore_lite.open(fresh) as store:
        demo.fill(store)
        demo.fill(store)  # a restarted demo server: left as it is
        assert store.organizations.count(name="demo-lab") == 1
    served = run("serve", db, "--demo", "--port", 0, check=False)
    assert served.returncode == 1 and "--demo fills a new store" in served.stderr
    assert "Traceback" not in served.stderr


def test_query_reads_a_document_from_stdin(tmp_path):
    db = tmp_path / "db.sqlite"
    with clustore_lite.open(db) as store:
        store.datasets.create(store.organizations.create("lumen").id, "p", pa.table({"x": [1]}))
    answer = run("query", db, "-", input="{ datasets_aggregate { aggregate { count } } }")
    assert json.loads(answer.stdout)["data"]["datasets_aggregate"]["aggregate"]["count"] == 1
