"""Hasura's generated mutations through the real server (and the real `gql` client):
update operators in update_T, update_T_by_pk and update_T_many (issue 14, item 8);
client-chosen ids and nested object-relationship inserts with on_conflict at each
level, under the access rules of a top-level insert (item 10)."""

from __future__ import annotations

import uuid

import jwt
import pytest
from gql import Client as GqlClient
from gql import gql
from gql.transport.exceptions import TransportQueryError
from gql.transport.requests import RequestsHTTPTransport

import clustore_lite
from serving import HTTP, running_server

ADMIN, JWT_SECRET = "mut-admin-secret", "mut-jwt-secret-of-32-bytes-or-more!!"
HEADERS = {"X-Hasura-Admin-Secret": ADMIN}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    db = tmp_path_factory.mktemp("mut") / "store.sqlite"
    with clustore_lite.open(db) as store:
        olga = store.users.create("olga", "olga@example.org")["id"]
        gus = store.users.create("gus")["id"]
        lab = store.organizations.create("lab", owner_id=olga)
        store.memberships.create(lab["accessId"], "guest", user_id=gus)
    env = {"CLUSTORE_ADMIN_SECRET": ADMIN, "CLUSTORE_JWT_SECRET": JWT_SECRET}
    with running_server(db, env=env) as url:
        yield {"url": url, "db": db, "olga": olga, "gus": gus, "lab": lab["id"]}


def post(served, query: str, variables: dict | None = None, user: str | None = None) -> dict:
    """The JSON answer, as the store admin or as `user` (a JWT)."""
    headers = HEADERS if user is None else {
        "X-Clusauth-Token": jwt.encode({"sub": user}, JWT_SECRET, "HS256")}
    response = HTTP.post(f"{served['url']}/v1/graphql", headers=headers, timeout=30,
                          json={"query": query, "variables": variables or {}})
    assert response.status_code == 200, response.text
    return response.json()


def data(answer: dict) -> dict:
    assert "errors" not in answer, answer["errors"]
    return answer["data"]


def error(answer: dict) -> dict:
    assert "errors" in answer and not answer.get("data"), answer
    return answer["errors"][0]


def new_task(served, variables) -> str:
    query = ("mutation($org: uuid!, $v: jsonb) { insert_task_one(object: "
             "{name: $name, organizationId: $org, variables: $v}) { id } }")
    name = f"t-{uuid.uuid4().hex[:8]}"
    query = query.replace("$name", f'"{name}"')
    return data(post(served, query, {"org": served["lab"], "v": variables}))["insert_task_one"]["id"]


def variables_of(served, task: str):
    with clustore_lite.open(served["db"]) as store:
        return store.tasks.get(task)["variables"]


# -- item 8: update operators ----------------------------------------------------------

def test_jsonb_operators_with_set_in_update_by_pk(served):
    task = new_task(served, {"a": 1, "b": [1, 2, 3], "c": {"d": 1, "e": 2}})
    answer = data(post(served, """mutation($id: uuid!) {
      update_task_by_pk(pk_columns: {id: $id}, _set: {name: "renamed"},
                        _append: {variables: {f: true}}, _delete_at_path: {predictions: ["x"]})
      { name variables } }""", {"id": task}))["update_task_by_pk"]
    assert answer == {"name": "renamed",
                      "variables": {"a": 1, "b": [1, 2, 3], "c": {"d": 1, "e": 2}, "f": True}}
    for operator, argument, expected in [
            ("_delete_key", '"a"', {"b": [1, 2, 3], "c": {"d": 1, "e": 2}, "f": True}),
            ("_delete_at_path", '["c", "d"]', {"b": [1, 2, 3], "c": {"e": 2}, "f": True}),
            ("_prepend", '{f: false, g: 0}', {"b": [1, 2, 3], "c": {"e": 2}, "f": True, "g": 0})]:
        data(post(served, f"mutation($id: uuid!) {{ update_task(where: {{id: {{_eq: $id}}}}, "
                          f"{operator}: {{variables: {argument}}}) {{ affected_rows }} }}",
                  {"id": task}))
        assert variables_of(served, task) == expected, operator
    array = new_task(served, [1, "x", 2, "x"])
    data(post(served, "mutation($id: uuid!) { a: update_task_by_pk(pk_columns: {id: $id}, "
                      '_delete_key: {variables: "x"}) { id } b: update_task_by_pk(pk_columns: '
                      "{id: $id}, _delete_elem: {variables: -1}) { id } }", {"id": array}))
    assert variables_of(served, array) == [1]


def test_update_many_runs_in_order_and_answers_each(served):
    task = new_task(served, [])
    answer = data(post(served, """mutation($id: uuid!) { update_task_many(updates: [
        {where: {id: {_eq: $id}}, _append: {variables: 1}},
        {where: {id: {_eq: $id}}, _append: {variables: [2, 3]}},
        {where: {name: {_eq: "no such task"}}, _set: {name: "x"}},
        {where: {id: {_eq: $id}}, _delete_elem: {variables: 0}}]) {
          affected_rows returning { variables } } }""", {"id": task}))["update_task_many"]
    assert answer == [{"affected_rows": 1, "returning": [{"variables": [1]}]},
                      {"affected_rows": 1, "returning": [{"variables": [1, 2, 3]}]},
                      {"affected_rows": 0, "returning": []},
                      {"affected_rows": 1, "returning": [{"variables": [2, 3]}]}]


def test_a_failing_update_rolls_back_the_whole_request(served):
    task = new_task(served, {"keep": True})
    answer = post(served, """mutation($id: uuid!) {
      first: update_task_by_pk(pk_columns: {id: $id}, _set: {name: "rolled-back"}) { id }
      many: update_task_many(updates: [
        {where: {id: {_eq: $id}}, _append: {variables: {gone: 1}}},
        {where: {id: {_eq: $id}}, _delete_elem: {variables: 0}}]) { affected_rows } }""",
                  {"id": task})
    failure = error(answer)
    assert failure["extensions"]["code"] == "validation-failed"
    assert "cannot delete from object using integer index" in failure["message"]
    with clustore_lite.open(served["db"]) as store:
        row = store.tasks.get(task)
    assert row["variables"] == {"keep": True} and row["name"] != "rolled-back"


@pytest.mark.parametrize("arguments, message", [
    ('_set: {name: "x"}, _append: {name: "y"}', "unknown field 'name'"),  # not jsonb
    ('_set: {variables: {}}, _append: {variables: {}}',
     'column found in multiple operators; "variables" in _set, _append operators'),
    ("", "at least any one of _append, _delete_at_path, _delete_elem, _delete_key, _prepend, _set"),
    ("_set: {}", "at least any one of"),
])
def test_refused_updates_change_nothing(served, arguments, message):
    task = new_task(served, {"same": 1})
    failure = error(post(served, f"mutation($id: uuid!) {{ update_task(where: {{id: {{_eq: $id}}}}"
                                 f"{', ' if arguments else ''}{arguments}) {{ affected_rows }} }}",
                         {"id": task}))
    assert message in failure["message"] and failure["extensions"]["code"] == "validation-failed"
    many = error(post(served, "mutation($id: uuid!) { update_task_many(updates: "
                              f"[{{where: {{id: {{_eq: $id}}}}{', ' if arguments else ''}{arguments}}}])"
                              " { affected_rows } }", {"id": task}))
    assert message in many["message"]
    assert variables_of(served, task) == {"same": 1}


def test_inc_is_typed_but_derived_counters_are_refused(served):
    frame = data(post(served, "{ datasets(limit: 1) { dataframeId } }"))["datasets"]
    if not frame:
        data(post(served, 'mutation($org: uuid!) { insert_dataset_one(object: {name: "inc", '
                          "organizationId: $org}) { id } }", {"org": served["lab"]}))
        frame = data(post(served, "{ datasets(limit: 1) { dataframeId } }"))["datasets"]
    failure = error(post(served, "mutation($id: uuid!) { update_dataframe_by_pk(pk_columns: "
                                 "{id: $id}, _inc: {rows: 1}) { rows } }",
                         {"id": frame[0]["dataframeId"]}))
    assert "no settable field 'rows'" in failure["message"]
    assert failure["extensions"]["code"] == "validation-failed"


def test_a_guest_cannot_update_through_operators(served):
    task = new_task(served, {"x": 1})
    failure = error(post(served, "mutation($id: uuid!) { update_task_by_pk(pk_columns: {id: $id}, "
                                 "_append: {variables: {y: 2}}) { id } }", {"id": task},
                         user=served["gus"]))
    assert failure["extensions"]["code"] == "permission-denied"
    assert variables_of(served, task) == {"x": 1}


def test_operators_through_the_gql_client(served):
    task = new_task(served, {"n": [1]})
    transport = RequestsHTTPTransport(url=f"{served['url']}/v1/graphql", headers=HEADERS)
    with GqlClient(transport=transport, fetch_schema_from_transport=True) as session:
        document = gql("""mutation($id: uuid!, $more: jsonb) {
          update_task_many(updates: [{where: {id: {_eq: $id}}, _append: {variables: $more}}]) {
            returning { variables } } }""")
        document.variable_values = {"id": task, "more": {"m": 2}}
        answer = session.execute(document)
        assert answer["update_task_many"] == [{"returning": [{"variables": {"n": [1], "m": 2}}]}]
        bad = gql("mutation($id: uuid!) { update_task_by_pk(pk_columns: {id: $id}, "
                  "_delete_elem: {variables: 0}) { id } }")
        bad.variable_values = {"id": task}
        with pytest.raises(TransportQueryError) as raised:
            session.execute(bad)
        assert raised.value.errors[0]["extensions"]["code"] == "validation-failed"


# -- item 10: client ids and nested inserts --------------------------------------------

def test_a_client_chosen_id_is_kept_and_a_taken_one_is_a_conflict(served):
    chosen = str(uuid.uuid4())
    insert = ("mutation($id: uuid!, $name: String!) { insert_organization_one(object: "
              "{id: $id, name: $name}) { id name } }")
    assert data(post(served, insert, {"id": chosen, "name": "chosen"}))[
        "insert_organization_one"] == {"id": chosen, "name": "chosen"}
    taken = error(post(served, insert, {"id": chosen, "name": "other"}))
    assert taken["extensions"]["code"] == "constraint-violation" and chosen in taken["message"]
    upsert = data(post(served, "mutation($id: uuid!) { insert_organization_one(object: "
                               '{id: $id, name: "renamed"}, on_conflict: {constraint: '
                               "organization_pkey, update_columns: [name]}) { id name } }",
                       {"id": chosen}))
    assert upsert["insert_organization_one"] == {"id": chosen, "name": "renamed"}
    bad = error(post(served, 'mutation { insert_team_one(object: {id: "nope", name: "t"}) { id } }'))
    assert bad["extensions"]["code"] == "validation-failed"
    for table, fields in (("dataset", "name: \"with-id\", organizationId: $org"),
                          ("task", "name: \"with-id\", organizationId: $org"),
                          ("team", "name: \"with-id\", organizationId: $org"),
                          ("tracking", "kind: \"with-id\", organizationId: $org"),
                          ("dataframe", "metadata: {}")):
        chosen = str(uuid.uuid4())
        query = (f"mutation($id: uuid!{', $org: uuid!' if '$org' in fields else ''}) "
                 f"{{ insert_{table}_one(object: {{id: $id, {fields}}}) {{ id }} }}")
        variables = {"id": chosen, **({"org": served["lab"]} if "$org" in fields else {})}
        assert data(post(served, query, variables))[f"insert_{table}_one"] == {"id": chosen}, table


def test_nested_object_inserts_create_each_level_and_log_each_event(served):
    dataset, owner, org = (str(uuid.uuid4()) for _ in range(3))
    answer = data(post(served, """mutation($d: uuid!, $u: uuid!, $o: uuid!) {
      insert_dataset_one(object: {id: $d, name: "nested",
        owner: {data: {id: $u, name: "nia", email: "nia@example.org"}},
        organization: {data: {id: $o, name: "nested-org"}}}) {
          id owner { id name } organization { id name } } }""",
                       {"d": dataset, "u": owner, "o": org}))["insert_dataset_one"]
    assert answer == {"id": dataset, "owner": {"id": owner, "name": "nia"},
                      "organization": {"id": org, "name": "nested-org"}}
    with clustore_lite.open(served["db"]) as store:
        logged = {(e["tableName"], e["resourceId"]) for e in store.events.list(
            where={"op": {"_eq": "INSERT"}, "resourceId": {"_in": [dataset, owner, org]}})}
    assert logged == {("dataset", dataset), ("organization", org)}  # users are not watched


def test_on_conflict_at_each_level(served):
    linked = data(post(served, """mutation($org: uuid!) { insert_dataset(objects: [{
        name: "linked", organizationId: $org,
        owner: {data: {name: "olga again", email: "olga@example.org"},
                on_conflict: {constraint: user_email_key, update_columns: [name]}}}]) {
          affected_rows returning { owner { id name } } } }""", {"org": served["lab"]}))
    assert linked["insert_dataset"] == {
        "affected_rows": 2, "returning": [{"owner": {"id": served["olga"], "name": "olga again"}}]}
    skipped = error(post(served, """mutation($org: uuid!) { insert_dataset_one(object: {
        name: "orphan", organizationId: $org,
        owner: {data: {name: "x", email: "olga@example.org"},
                on_conflict: {constraint: user_email_key, update_columns: []}}}) { id } }""",
                         {"org": served["lab"]}))
    assert "affects zero rows" in skipped["message"]
    both = error(post(served, """mutation($org: uuid!, $u: uuid!) { insert_dataset_one(object: {
        name: "both", organizationId: $org, ownerId: $u, owner: {data: {name: "y"}}}) { id } }""",
                      {"org": served["lab"], "u": served["olga"]}))
    assert 'cannot insert object relationship "owner"' in both["message"]
    with clustore_lite.open(served["db"]) as store:
        assert not store.datasets.list(where={"name": {"_in": ["orphan", "both"]}})
        assert not store.users.list(name="y")


def test_nesting_grants_nothing_a_top_level_insert_would_not(served):
    refused = error(post(served, """mutation($org: uuid!) { insert_dataset_one(object: {
        name: "by-gus", organizationId: $org, owner: {data: {name: "made-by-gus"}}}) { id } }""",
                         {"org": served["lab"]}, user=served["gus"]))
    assert refused["extensions"]["code"] == "permission-denied"
    in_lab = error(post(served, """mutation($org: uuid!) { insert_task_one(object: {
        name: "t", organization: {data: {name: "gus-org"}},
        dataset: {data: {name: "d", organizationId: $org}}}) { id } }""",
                        {"org": served["lab"]}, user=served["gus"]))
    assert in_lab["extensions"]["code"] == "permission-denied"  # a guest adds no dataset to lab
    own = data(post(served, """mutation { insert_dataset_one(object: {name: "gus-data",
        organization: {data: {name: "gus-own-org"}}}) { organization { name owner { id } } } }""",
                    user=served["gus"]))
    assert own["insert_dataset_one"]["organization"] == {"name": "gus-own-org",
                                                         "owner": {"id": served["gus"]}}
    direct = data(post(served, 'mutation { insert_organization_one(object: {name: "gus-direct"}) '
                               "{ id } }", user=served["gus"]))["insert_organization_one"]["id"]
    with clustore_lite.open(served["db"]) as store:
        assert not store.users.list(name="made-by-gus")
        orgs = {o["name"]: o["id"] for o in store.organizations.list(ownerId=served["gus"])}
        assert set(orgs) == {"gus-own-org", "gus-direct"}
        logged = {e["resourceId"]: e["sessionVariables"] for e in store.events.list(
            where={"tableName": {"_eq": "organization"}, "op": {"_eq": "INSERT"}})}
    # the nested insert is logged as the direct one is: same event, same session
    assert logged[orgs["gus-own-org"]] == logged[direct] == {
        "x-hasura-role": "user", "x-hasura-user-id": served["gus"]}


def test_array_relationship_inserts_nest_with_their_own_on_conflict(served):
    org = str(uuid.uuid4())  # chosen here: the nested task names its organization too
    answer = data(post(served, """mutation($org: uuid!) { insert_user_one(object: {name: "arr",
        organizations: {data: [{id: $org, name: "arr-org", datasets: {data: [{name: "arr-d",
          tasks: {data: [{name: "arr-t", organizationId: $org}]}}]}}]}}) {
        organizations { name datasets { name tasks { name } } } } }""", {"org": org}))
    assert answer["insert_user_one"]["organizations"] == [
        {"name": "arr-org", "datasets": [{"name": "arr-d", "tasks": [{"name": "arr-t"}]}]}]
    again = data(post(served, """mutation { insert_organization(objects: [{name: "arr-org",
        datasets: {data: [{name: "arr-d"}, {name: "arr-d2"}], on_conflict: {
          constraint: dataset_organizationId_name_key, update_columns: []}}}],
        on_conflict: {constraint: organization_name_key, update_columns: [name]}) {
        affected_rows returning { datasets(order_by: {name: asc}) { name } } } }"""))
    assert again["insert_organization"] == {
        "affected_rows": 2, "returning": [{"datasets": [{"name": "arr-d"}, {"name": "arr-d2"}]}]}


def test_the_served_schema_has_hasuras_generated_names(served):
    """Derived from the catalog: every writable table has update_T_many over T_updates,
    the operator inputs its columns allow, an id and its object relationships to insert."""
    from graphql import build_client_schema, get_introspection_query, get_named_type
    from clustore_lite.catalog import INT, JSON, REAL, TABLES

    schema = build_client_schema(data(post(served, get_introspection_query())))
    mutation = schema.mutation_type.fields
    for name, table in TABLES.items():
        if table.store_written:
            continue
        many = mutation[f"update_{name}_many"]
        assert str(many.args["updates"].type) == f"[{name}_updates!]!"
        assert str(many.type) == f"[{name}_mutation_response]"
        kinds = {table.columns[c] for c in table.visible_columns if c not in table.key}
        expected = {"_set"} | ({"_inc"} if kinds & {INT, REAL} else set()) | (
            {"_append", "_prepend", "_delete_key", "_delete_elem", "_delete_at_path"}
            if JSON in kinds else set())
        for field in (f"update_{name}", f"update_{name}_by_pk"):
            operators = {a for a in mutation[field].args if a.startswith("_")}
            assert operators == expected, field
        updates = schema.type_map[f"{name}_updates"].fields
        assert set(updates) == expected | {"where"}
        for operator in expected - {"_set"}:
            suffix = operator.lstrip("_")
            assert str(updates[operator].type) == f"{name}_{suffix}_input"
        inserted = schema.type_map[f"{name}_insert_input"].fields
        assert ("id" in inserted) == (table.key == ("id",) and name != "chunk"), name
        for field, rel in table.objects.items():
            assert get_named_type(inserted[field].type).name == f"{rel.table}_obj_rel_insert_input"


def test_the_mutations_hasura_would_generate_from_the_mirror_are_served(served):
    """One API, two engines: the mutation root fields the Hasura metadata declares, and
    the update operators its update permissions would give role `user`, are served."""
    from graphql import build_client_schema, get_introspection_query
    from clustore_lite.catalog import INT, JSON, REAL, TABLES
    from clustore_lite.mirror.hasura import table_metadata

    schema = build_client_schema(data(post(served, get_introspection_query())))
    for name, table in TABLES.items():
        if table.store_written:
            continue
        meta = table_metadata(name, "HOOK")
        roots = meta["configuration"]["custom_root_fields"]
        for kind in ("insert", "insert_one", "update", "update_by_pk", "update_many", "delete",
                     "delete_by_pk"):
            assert roots[kind] in schema.mutation_type.fields, roots[kind]
        for permission in meta.get("update_permissions", []):
            columns = permission["permission"]["columns"]
            for operator, kinds in (("inc", (INT, REAL)), ("append", (JSON,)),
                                    ("delete_at_path", (JSON,))):
                wanted = {c for c in columns if table.columns[c] in kinds and c in table.visible_columns}
                if wanted:
                    served_type = schema.type_map[f"{name}_{operator}_input"]
                    assert wanted <= set(served_type.fields), (name, operator)
