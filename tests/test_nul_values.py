"""Values PostgreSQL cannot store (the NUL character in text, \\u0000 in JSON) are
refused when written, through every door: the Python API, GraphQL over HTTP, and the
CLI's import (column names come from the file; argv cannot hold a NUL)."""

import subprocess
import sys

import httpx
import pyarrow as pa
import pytest

import clustore_lite
from clustore_lite.errors import UnstorableValue

NUL = "\x00"
CLI = [sys.executable, "-m", "clustore_lite"]


def rows_of(store):
    return {t: store.db.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]
            for t in ("user", "organization", "dataset", "dataframe", "chunk", "task",
                      "tracking", "access")}


def test_the_python_api_refuses_nul_in_every_text_and_json_column(store, org):
    data = store.datasets.create(org.id, "points", {"x": [1.0]})
    before = rows_of(store)
    writes = {
        "user.name": lambda: store.users.create(f"a{NUL}b"),
        "user.email": lambda: store.users.create("ana", f"a{NUL}@example.org"),
        "organization.name": lambda: store.organizations.update(org.id, name=f"lu{NUL}"),
        "dataset.name": lambda: store.datasets.create(org.id, f"{NUL}"),
        "dataframe.metadata": lambda: store.dataframes.update(data.dataframe_id,
                                                               metadata={"k": [f"v{NUL}"]}),
        "dataframe.columns": lambda: store.datasets.create(org.id, "cols", {f"x{NUL}": [1]}),
        "task.variables": lambda: store.tasks.create(org.id, "t", variables={f"k{NUL}": 1}),
        "task.identifier": lambda: store.tasks.create(org.id, "t", identifier=f"{NUL}run"),
        "tracking.payload": lambda: store.trackings.create("view", payload={"a": {"b": NUL}}),
        "tracking.kind": lambda: store.trackings.create(f"vi{NUL}ew"),
    }
    for column, write in writes.items():
        with pytest.raises(UnstorableValue) as refused:
            write()
        message = str(refused.value)
        assert message.startswith(f"{column} contains the NUL character"), message
        assert "PostgreSQL cannot store" in message
    assert rows_of(store) == before  # nothing of any refused write was kept
    assert store.organizations.get(org.id).name == "lumen"


def test_a_backslash_before_u0000_is_text_not_a_nul(store, org):
    """JSON text `"\\\\u0000"` is a backslash and 'u0000': PostgreSQL's jsonb holds it."""
    made = store.trackings.create("view", payload={"text": "\\u0000"}, organization_id=org.id)
    assert store.trackings.get(made.id).payload == {"text": "\\u0000"}


def test_graphql_refuses_nul_with_a_data_exception(server):
    url, _ = server
    answers = [
        httpx.post(f"{url}/v1/graphql", json={"query": 'mutation { insert_organization_one('
                                              'object: {name: "lu\\u0000men"}) { id } }'}),
        httpx.post(f"{url}/v1/graphql", json={
            "query": "mutation($m: jsonb) { insert_dataframe_one(object: {metadata: $m}) { id } }",
            "variables": {"m": {"note": f"a{NUL}b"}}}),
    ]
    for answer in answers:
        assert answer.status_code == 200, answer.text
        [error] = answer.json()["errors"]
        assert error["extensions"]["code"] == "data-exception", error
        assert "NUL character" in error["message"] and "PostgreSQL" in error["message"]
    listed = httpx.post(f"{url}/v1/graphql", json={"query": "{ organizations { id } dataframes { id } }"})
    assert listed.json()["data"] == {"organizations": [], "dataframes": []}


def test_arrow_uploads_refuse_a_column_name_with_nul(server):
    url, _ = server
    made = httpx.post(f"{url}/v1/graphql", json={
        "query": "mutation { insert_dataframe_one(object: {}) { id } }"}).json()
    frame = made["data"]["insert_dataframe_one"]["id"]
    sink = pa.BufferOutputStream()
    table = pa.table({f"x{NUL}": [1.0]})
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    answer = httpx.post(f"{url}/v1/dataframes/{frame}/chunks", content=sink.getvalue().to_pybytes(),
                        headers={"content-type": "application/vnd.apache.arrow.stream"})
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "data-exception"
    assert answer.json()["error"].startswith("dataframe.columns contains the NUL character")


def test_cli_import_refuses_a_column_name_with_nul_in_one_line(tmp_path):
    source = tmp_path / "bad.arrow"
    with pa.OSFile(str(source), "wb") as sink, pa.ipc.new_file(
            sink, pa.schema([(f"x{NUL}y", pa.float64())])) as writer:
        writer.write_table(pa.table({f"x{NUL}y": [1.0, 2.0]}))
    db = tmp_path / "db.sqlite"
    result = subprocess.run([*CLI, "import", str(db), str(source), "--org", "o", "--dataset", "d"],
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if "NUL" in line]
    assert "dataframe.columns contains the NUL character" in line
    with clustore_lite.open(db) as store:
        assert store.datasets.list() == [] and store.dataframes.list() == []
