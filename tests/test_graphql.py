"""The GraphQL API over HTTP, against a real `clustore-lite serve`, with a real
GraphQL client (gql) validating documents against the served introspection."""

from pathlib import Path

import pytest
from gql import Client as GqlClient
from gql import gql
from gql.transport.httpx import HTTPXTransport
from graphql import build_client_schema, get_introspection_query, parse, validate

import clustore_lite
from serving import Client, running_server

SEED = (Path(__file__).parent / "documents" / "seed.graphql").read_text()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    db = tmp_path_factory.mktemp("graphql") / "store.sqlite"
    with running_server(db) as url:
        client = Client(url)
        ids = populate(client)
        yield url, db, client, ids


def populate(client: Client) -> dict:
    ana = client('mutation { insert_user_one(object: {name: "ana", email: "ana@x.org"}) { id } }')
    bob = client('mutation { insert_user_one(object: {name: "bob"}) { id } }')
    ana_id, bob_id = ana["insert_user_one"]["id"], bob["insert_user_one"]["id"]
    org = client("""mutation($owner: uuid!) {
      insert_organization_one(object: {name: "lumen", ownerId: $owner, datasets: {data: [
        {name: "points", ownerId: $owner, dataframe: {data: {columns: ["x", "y"],
          metadata: {source: "test"},
          chunks: {data: [{data: [[1.5, 2.0], [3.0, 4.5]]}, {data: [[5.0, 6.0]]}]}}}},
        {name: "empty"}]}}) {
        id accessId datasets(order_by: {name: asc}) { id name dataframeId }
      }
    }""", {"owner": ana_id})["insert_organization_one"]
    other = client('mutation { insert_organization_one(object: {name: "other"}) { id } }')
    team = client('mutation($org: uuid!) { insert_team_one(object: {name: "core", organizationId: $org}) { id accessId } }',
                  {"org": org["id"]})["insert_team_one"]
    client("""mutation($team: uuid!, $ana: uuid!, $bob: uuid!) {
      insert_team_member(objects: [{teamId: $team, userId: $ana}, {teamId: $team, userId: $bob}]) { affected_rows }
    }""", {"team": team["id"], "ana": ana_id, "bob": bob_id})
    client("""mutation($access: uuid!, $team: uuid!) {
      insert_membership_one(object: {accessId: $access, teamId: $team, role: "contributor",
                                     webhook: "http://127.0.0.1:9/hook", follow: true}) { id }
    }""", {"access": org["accessId"], "team": team["id"]})
    points = org["datasets"][1]
    task = client("""mutation($org: uuid!, $ds: uuid!, $owner: uuid!) {
      insert_task_one(object: {name: "km", organizationId: $org, datasetId: $ds, ownerId: $owner,
        algorithm: {name: "kmeans", k: 2, iter: 10, init: "kmeans_pp", parallel: true, mu: 0.5},
        identifier: "run-1", variables: {cols: ["x", "y"]}, predictions: [0, 1, 1],
        centroids: {data: {columns: ["x", "y"], chunks: {data: [{data: [[2.0, 3.0], [5.0, 6.0]]}]}}},
        labels: {data: {columns: ["label"], chunks: {data: [{data: [[0], [0], [1]]}]}}}}) { id }
    }""", {"org": org["id"], "ds": points["id"], "owner": ana_id})["insert_task_one"]
    return {"ana": ana_id, "bob": bob_id, "org": org["id"], "other": other["insert_organization_one"]["id"],
            "team": team["id"], "points": points["id"], "frame": points["dataframeId"],
            "task": task["id"], "access": org["accessId"]}


def test_seed_documents_validate_against_the_served_introspection(served):
    url, _, client, _ = served
    introspection = client(get_introspection_query())
    schema = build_client_schema(introspection)
    assert validate(schema, parse(SEED)) == []


def test_a_real_client_runs_every_seed_query(served):
    url, _, _, ids = served
    transport = HTTPXTransport(url=f"{url}/v1/graphql")
    with GqlClient(transport=transport, fetch_schema_from_transport=True) as session:
        for name, variables in [("Organizations", {}), ("Organization", {"id": ids["org"]}),
                                ("Datasets", {}), ("Dataset", {"id": ids["points"]}),
                                ("Tasks", {}), ("Task", {"id": ids["task"]}),
                                ("Accesses", {}), ("Access", {"id": ids["access"]}),
                                ("Teams", {}), ("Team", {"id": ids["team"]})]:
            document = gql(SEED)
            result = session.execute(document, variable_values=variables, operation_name=name)
            assert result, name
        org = session.execute(gql(SEED), variable_values={"id": ids["org"]},
                              operation_name="Organization")["organization"]
    assert org["name"] == "lumen" and org["owner"]["name"] == "ana"
    [points] = [d for d in org["datasets"] if d["name"] == "points"]
    frame = points["dataframe"]
    assert (frame["dim"], frame["columns"], frame["metadata"]) == (2, ["x", "y"], {"source": "test"})
    assert [c["data"] for c in frame["chunks"]] == [[[1.5, 2.0], [3.0, 4.5]], [[5.0, 6.0]]]
    assert frame["size"] == sum(c["size"] for c in frame["chunks"])
    [task] = org["tasks"]
    assert task["algorithm"]["k"] == 2 and task["algorithm"]["parallel"] is True
    assert task["algorithm"]["iterFreq"] is None and task["variables"] == {"cols": ["x", "y"]}
    assert task["centroids"]["chunks"][0]["data"] == [[2.0, 3.0], [5.0, 6.0]]
    assert task["dataset"]["name"] == "points"
    assert sorted(m["name"] for m in org["teams"][0]["members"]) == ["ana", "bob"]
    [membership] = org["access"]["memberships"]
    assert membership["team"]["name"] == "core" and membership["follow"] is True
    assert len({org["access"]["adminToken"], org["access"]["guestToken"]}) == 2


def test_graphql_answers_what_the_library_stores(served):
    _, db, client, ids = served
    with clustore_lite.open(db) as store:
        table = store.datasets.read(ids["points"])
        frame = store.dataframes.get(ids["frame"])
    data = client('query($id: uuid!) { dataframe(id: $id) { rows size columns chunks(order_by: {position: asc}) { data } } }',
                  {"id": ids["frame"]})["dataframe"]
    rows = [row for chunk in data["chunks"] for row in chunk["data"]]
    assert rows == [list(r.values()) for r in table.to_pylist()]
    assert (data["rows"], data["size"], data["columns"]) == (frame["rows"], frame["size"], frame["columns"])


@pytest.mark.parametrize("where, order_by, limit, offset, sql", [
    ({}, {"name": "asc"}, None, None, "SELECT name FROM dataset ORDER BY name"),
    ({"name": {"_eq": "points"}}, None, None, None, "SELECT name FROM dataset WHERE name = 'points'"),
    ({"name": {"_like": "%t%"}}, {"name": "desc"}, None, None,
     "SELECT name FROM dataset WHERE name GLOB '*t*' ORDER BY name DESC"),
    ({"_or": [{"name": {"_ilike": "EMP%"}}, {"owner": {"name": {"_eq": "ana"}}}]}, {"name": "asc"}, 1, 1,
     "SELECT d.name FROM dataset d LEFT JOIN user u ON u.id = d.ownerId "
     "WHERE lower(d.name) LIKE 'emp%' OR u.name = 'ana' ORDER BY d.name LIMIT 1 OFFSET 1"),
    ({"_not": {"ownerId": {"_is_null": True}}}, None, None, None,
     "SELECT name FROM dataset WHERE ownerId IS NOT NULL"),
    ({"organization": {"name": {"_in": ["lumen", "x"]}}}, {"owner": {"name": "asc"}}, None, None,
     "SELECT d.name FROM dataset d JOIN organization o ON o.id = d.organizationId "
     "LEFT JOIN user u ON u.id = d.ownerId WHERE o.name IN ('lumen', 'x') ORDER BY u.name NULLS LAST, d.id"),
])
def test_filters_sorting_paging_agree_with_sql(served, where, order_by, limit, offset, sql):
    _, db, client, _ = served
    args = {"where": where, "order_by": order_by, "limit": limit, "offset": offset}
    answer = client("""query($where: dataset_bool_exp, $order_by: [dataset_order_by!], $limit: Int, $offset: Int) {
      datasets(where: $where, order_by: $order_by, limit: $limit, offset: $offset) { name }
      datasets_aggregate(where: $where) { aggregate { count } }
    }""", args)
    with clustore_lite.open(db) as store:
        expected = [r["name"] for r in store.db.query(sql.replace(" user ", ' "user" '))]
        total = store.db.query(f"SELECT count(*) AS n FROM ({sql.split(' ORDER BY ')[0]})")[0]["n"]
    assert [d["name"] for d in answer["datasets"]] == expected
    if limit is None:
        assert answer["datasets_aggregate"]["aggregate"]["count"] == total


def test_relationship_aggregates_and_nodes(served):
    _, _, client, ids = served
    answer = client("""query($id: uuid!) { organization(id: $id) {
        datasets_aggregate(where: {name: {_neq: "nothing"}}) { aggregate { count } nodes { name } }
        teams_aggregate { aggregate { n: count } }
    } }""", {"id": ids["org"]})["organization"]
    assert answer["datasets_aggregate"]["aggregate"]["count"] == 2
    assert sorted(n["name"] for n in answer["datasets_aggregate"]["nodes"]) == ["empty", "points"]
    assert answer["teams_aggregate"]["aggregate"]["n"] == 1


def test_aliases_fragments_and_directives(served):
    _, _, client, ids = served
    answer = client("""query($id: uuid!, $skip: Boolean!) {
      a: organization(id: $id) { n: name ...Owner owner @skip(if: $skip) { id } }
      b: organizations(order_by: {name: desc}, limit: 1) { name  ... on organization { id } __typename }
    }
    fragment Owner on organization { owner { name } }""", {"id": ids["org"], "skip": False})
    assert answer["a"]["n"] == "lumen" and answer["a"]["owner"] == {"name": "ana", "id": ids["ana"]}
    assert answer["b"][0]["name"] == "other" and answer["b"][0]["__typename"] == "organization"


def test_update_and_delete_mutations(served):
    _, _, client, ids = served
    created = client('mutation($org: uuid!) { insert_dataset(objects: [{name: "tmp1", organizationId: $org}, '
                     '{name: "tmp2", organizationId: $org}]) { affected_rows returning { id name } } }',
                     {"org": ids["org"]})["insert_dataset"]
    assert created["affected_rows"] == 2
    updated = client('mutation { update_dataset(where: {name: {_like: "tmp%"}}, _set: {ownerId: null}) '
                     '{ affected_rows returning { ownerId } } }')["update_dataset"]
    assert updated["affected_rows"] == 2 and updated["returning"] == [{"ownerId": None}] * 2
    renamed = client('mutation($id: uuid!) { update_dataset_by_pk(pk_columns: {id: $id}, _set: {name: "tmp9"}) { name updatedAt } }',
                     {"id": created["returning"][0]["id"]})["update_dataset_by_pk"]
    assert renamed["name"] == "tmp9"
    deleted = client('mutation { delete_dataset(where: {name: {_in: ["tmp9", "tmp2"]}}) { affected_rows returning { name } } }')
    assert deleted["delete_dataset"]["affected_rows"] == 2
    assert sorted(r["name"] for r in deleted["delete_dataset"]["returning"]) == ["tmp2", "tmp9"]
    gone = client('mutation($id: uuid!) { delete_dataset_by_pk(id: $id) { id } }', {"id": created["returning"][0]["id"]})
    assert gone["delete_dataset_by_pk"] is None
    assert client('query($id: uuid!) { user(id: $id) { name } }', {"id": "00000000-0000-4000-8000-000000000000"})["user"] is None


def test_on_conflict_do_nothing_and_update(served):
    _, _, client, ids = served
    nothing = client('mutation { insert_organization(objects: [{name: "lumen"}], '
                     'on_conflict: {constraint: organization_name_key, update_columns: []}) { affected_rows } }')
    assert nothing["insert_organization"]["affected_rows"] == 0
    upsert = client('mutation($owner: uuid!) { insert_organization_one(object: {name: "other", ownerId: $owner}, '
                    'on_conflict: {constraint: organization_name_key, update_columns: [ownerId]}) { id owner { name } } }',
                    {"owner": ids["bob"]})["insert_organization_one"]
    assert upsert == {"id": ids["other"], "owner": {"name": "bob"}}


@pytest.mark.parametrize("document, variables, code", [
    ("{ organizations { nope } }", None, "validation-failed"),
    ("{ organizations { name }", None, "validation-failed"),
    ("query($id: uuid!) { organization(id: $id) { name } }", {"id": 5}, "validation-failed"),
    ("query($id: uuid!) { organization(id: $id) { name } }", {}, "validation-failed"),
    ("query { organization(id: \"not-a-uuid\") { name } }", None, "validation-failed"),
    ('mutation { insert_organization_one(object: {name: "lumen"}) { id } }', None, "constraint-violation"),
    ('mutation { insert_organization_one(object: {name: ""}) { id } }', None, "validation-failed"),
    ('mutation { insert_membership_one(object: {accessId: "00000000-0000-4000-8000-000000000000", '
     'role: "boss", userId: "00000000-0000-4000-8000-000000000000"}) { id } }', None, "validation-failed"),
    ('mutation { insert_dataset_one(object: {name: "x", organizationId: "00000000-0000-4000-8000-000000000000"}) { id } }',
     None, "not-found"),
    ('mutation { insert_access_one(object: {webhook: "ftp://nope"}) { id } }', None, "validation-failed"),
    ('{ datasets(where: {name: {_eq: null}}) { id } }', None, "validation-failed"),
    ('{ datasets(limit: -1) { id } }', None, "validation-failed"),
])
def test_bad_requests_answer_errors_with_codes_and_change_nothing(served, document, variables, code):
    _, db, client, _ = served
    with clustore_lite.open(db) as store:
        before = store.db.query("SELECT count(*) AS n FROM organization")[0]["n"]
    response = client.post(document, variables)
    assert response.status_code < 500
    errors = response.json()["errors"]
    assert errors[0]["extensions"]["code"] == code, errors
    with clustore_lite.open(db) as store:
        assert store.db.query("SELECT count(*) AS n FROM organization")[0]["n"] == before


def test_malformed_bodies_answer_errors_with_codes(served):
    url, _, client, _ = served
    for body, code in ((b"{not json", "invalid-json"), (b'{"query": 5}', "validation-failed"),
                       (b"5", "validation-failed")):
        response = client.http.post(client.url, content=body, headers={"content-type": "application/json"})
        assert response.status_code == 200, (body, response.status_code)
        assert response.json()["errors"][0]["extensions"]["code"] == code, (body, response.text)


def test_ping_and_ide_page(served):
    url, _, client, _ = served
    assert client.http.get(f"{url}/ping").text == "pong"
    page = client.http.get(f"{url}/v1/graphql")
    assert page.status_code == 200 and "<html" in page.text.lower()


def _nested(depth: int) -> str:
    inner = "id"
    for _ in range(depth // 2):
        inner = f"organization {{ teams {{ {inner} }} }}"
    return f"{{ teams {{ {inner} }} }}"


@pytest.mark.parametrize("document, message", [
    (_nested(44), "levels deep"),
    ("{ " + " ".join(f"a{i}: organizations {{ id }}" for i in range(60)) + " }", "root fields"),
    ("query { organizations { ...F0 } }\n" + "\n".join(
        f"fragment F{i} on organization {{ {' '.join(f'a{j}: teams {{ ...F{i + 1} }}' for j in range(4))} }}"
        for i in range(10)) + "\nfragment F10 on team { id }", None),
])
def test_abusive_documents_are_refused_before_running(served, document, message):
    _, _, client, _ = served
    response = client.post(document)
    assert response.status_code < 500
    errors = response.json()["errors"]
    assert errors[0]["extensions"]["code"] == "validation-failed"
    if message:
        assert message in errors[0]["message"]


def test_huge_bodies_are_413(served):
    url, _, client, _ = served
    response = client.http.post(client.url, content=b'{"query": "' + b" " * (300 << 20) + b'"}',
                                headers={"content-type": "application/json"})
    assert response.status_code == 413


@pytest.mark.parametrize("rows, message", [
    ([[1.0]], "has 1 values"),
    ([["text", 2.0]], "cannot hold"),
    ("not rows", "list of rows"),
])
def test_chunk_rows_of_the_wrong_width_or_type_are_refused(served, rows, message):
    _, db, client, ids = served
    with clustore_lite.open(db) as store:
        before = store.dataframes.get(ids["frame"])
    response = client.post("mutation($f: uuid!, $rows: jsonb!) { insert_chunk_one(object: "
                           "{dataframeId: $f, data: $rows}) { id } }", {"f": ids["frame"], "rows": rows})
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "validation-failed" and message in error["message"]
    with clustore_lite.open(db) as store:
        assert store.dataframes.get(ids["frame"]) == before
