"""`hasura-metadata`: a Hasura v3 metadata directory that names every table, root field,
relationship, permission and event trigger, and whose rules only use real fields."""


import pytest
import yaml

from clustore_lite.mirror.pg_schema import ORDER
from clustore_lite.catalog import TABLES

SPEC_ROOTS = {"user": "users", "organization": "organizations", "team": "teams",
              "access": "accesses", "dataset": "datasets", "task": "tasks",
              "dataframe": "dataframes", "tracking": "trackings"}
EVENTS = ("organization", "team", "access", "membership", "dataset", "task", "tracking")
OPERATORS = {"_eq", "_neq", "_in", "_nin", "_is_null", "_gt", "_gte", "_lt", "_lte",
             "_ceq", "_cne"}


@pytest.fixture(scope="module")
def metadata(hasura_metadata):
    _, out, printed = hasura_metadata
    assert "wrote Hasura metadata v3 for 11 tables" in printed
    assert "anonymous" in (out / "LIMITS.md").read_text()
    return out


def load(path):
    text = path.read_text()
    assert "&id" not in text  # no YAML anchors: every file reads on its own
    return yaml.safe_load(text)


def tables(metadata):
    assert load(metadata / "version.yaml") == {"version": 3}
    (source,) = load(metadata / "databases" / "databases.yaml")
    assert source["name"] == "default" and source["kind"] == "postgres"
    assert source["configuration"]["connection_info"]["database_url"] == {
        "from_env": "HASURA_GRAPHQL_DATABASE_URL"}
    assert source["tables"] == "!include default/tables/tables.yaml"
    folder = metadata / "databases" / "default" / "tables"
    out = {}
    for include in load(folder / "tables.yaml"):
        assert include.startswith("!include ")
        meta = load(folder / include.split(" ", 1)[1])
        assert meta["table"]["schema"] == "public"
        out[meta["table"]["name"]] = meta
    assert list(out) == ORDER
    return out


def relationships(meta):
    """name -> remote table, for one table's metadata."""
    table = meta["table"]["name"]
    out = {}
    for rel in meta.get("object_relationships", []):
        using = rel["using"]
        if "foreign_key_constraint_on" in using:
            column = using["foreign_key_constraint_on"]
            (target,) = {r.table for r in TABLES[table].objects.values() if r.column == column}
        else:
            target = using["manual_configuration"]["remote_table"]["name"]
        out[rel["name"]] = target
    for rel in meta.get("array_relationships", []):
        using = rel["using"]
        spec = using.get("foreign_key_constraint_on") or using["manual_configuration"]
        target = (spec.get("table") or spec.get("remote_table"))["name"]
        out[rel["name"]] = target
    return out


def test_every_table_has_its_root_fields_and_relationships(metadata):
    found = tables(metadata)
    for table, meta in found.items():
        roots = meta["configuration"]["custom_root_fields"]
        if table in SPEC_ROOTS:
            assert roots["select"] == SPEC_ROOTS[table] and roots["select_by_pk"] == table
        assert roots["select_aggregate"] == roots["select"] + "_aggregate"
        for op in ("insert", "update", "delete"):
            assert roots[op] == f"{op}_{table}"
            assert roots[f"{op}_by_pk" if op != "insert" else "insert_one"].startswith(f"{op}_{table}")
        rels = relationships(meta)
        computed = {c["name"]: c["definition"]["function"]["name"]
                    for c in meta.get("computed_fields", [])}
        for name, rel in {**TABLES[table].objects, **TABLES[table].arrays}.items():
            if getattr(rel, "through", None):
                assert name in computed, (table, name)
            else:
                assert rels.get(name) == rel.table, (table, name)
    assert found["user"]["computed_fields"][0]["definition"]["function"]["name"] == "clustore_user_teams"


def check_rule(found, table, rule, path=""):
    """A permission rule only names columns, relationships and operators that exist."""
    assert isinstance(rule, dict), path
    rels = relationships(found[table])
    for key, value in rule.items():
        where = f"{path}.{key}"
        if key in ("_and", "_or"):
            for item in value:
                check_rule(found, table, item, where)
        elif key == "_not":
            check_rule(found, table, value, where)
        elif key in TABLES[table].columns:
            assert set(value) <= OPERATORS, where
        elif key in rels:
            check_rule(found, rels[key], value, where)
        else:
            raise AssertionError(f"{table} has no field {where}")


def test_permissions_name_real_fields_for_both_roles(metadata):
    found = tables(metadata)
    for table, meta in found.items():
        roles = {p["role"] for p in meta["select_permissions"]}
        # trackings are their user's; people are shown to signed-in users only (issue 12)
        assert roles == ({"user"} if table in ("tracking", "user") else {"user", "anonymous"}), table
        for kind in ("select", "insert", "update", "delete"):
            for permission in meta.get(f"{kind}_permissions", []):
                body = permission["permission"]
                for key in ("filter", "check"):
                    if key in body:
                        check_rule(found, table, body[key], f"{table}.{kind}.{key}")
                assert set(body.get("columns", [])) <= set(TABLES[table].columns)
                assert set(body.get("set", {})) <= set(TABLES[table].columns)
    access = found["access"]["select_permissions"]
    assert all("adminToken" not in p["permission"]["columns"] for p in access)
    for table, column in (("access", "webhook"), ("membership", "webhook"), ("user", "email")):
        assert all(column not in p["permission"]["columns"]  # masked: the admin secret's
                   for p in found[table]["select_permissions"]), (table, column)
    text = (metadata / "databases/default/tables/public_organization.yaml").read_text()
    assert "X-Hasura-User-Id" in text


def test_event_triggers_of_spec_section_5(metadata):
    found = tables(metadata)
    for table, meta in found.items():
        triggers = meta.get("event_triggers", [])
        if table not in EVENTS:
            assert not triggers
            continue
        (trigger,) = triggers
        assert trigger["name"] == f"clustore_{table}"
        assert trigger["webhook_from_env"] == "CLUSTORE_WEBHOOK_URL"
        assert {"insert", "update", "delete"} <= set(trigger["definition"])
        assert trigger["retry_conf"]["num_retries"] == 5
