"""`clustore-lite ls`, `rename`, `delete`, `create-user`, `create-org` and `query`: a
store looked after from the shell, as sqlite-utils and Datasette do for theirs."""

from __future__ import annotations

import asyncio
import json
import sys

import click

from .cli_data import dataset_named, organization_named, user_named
from .errors import InvalidValue
from .store import Store

STORE = click.argument("db", type=click.Path(exists=True, dir_okay=False))
AS_JSON = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@click.command("ls")
@STORE
@click.argument("organization", required=False)
@AS_JSON
def ls(db, organization, as_json):
    """List the organizations, or the datasets of ORGANIZATION (a name or id)."""
    with Store(db, readonly=True) as store:
        rows = _datasets(store, organization) if organization else _organizations(store)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        if organization:
            click.echo(f"{row['name']}  {row['rows']} rows x {row['dim']} columns, "
                       f"{row['size']} bytes  {row['id']}")
        else:
            click.echo(f"{row['name']}  {row['datasets']} datasets, owner "
                       f"{row['owner'] or '-'}  {row['id']}")


def _organizations(store: Store) -> list[dict]:
    return store.db.query(
        "SELECT o.id, o.name, u.name AS owner, (SELECT count(*) FROM dataset d "
        "WHERE d.organizationId = o.id) AS datasets FROM organization o "
        "LEFT JOIN \"user\" u ON u.id = o.ownerId ORDER BY o.name")


def _datasets(store: Store, organization: str) -> list[dict]:
    found = organization_named(store, organization)
    return store.db.query(
        "SELECT d.id, d.name, u.name AS owner, coalesce(f.rows, 0) AS rows, "
        "coalesce(f.dim, 0) AS dim, coalesce(f.size, 0) AS size FROM dataset d "
        "LEFT JOIN \"user\" u ON u.id = d.ownerId LEFT JOIN dataframe f ON f.id = d.dataframeId "
        "WHERE d.organizationId = ? ORDER BY d.name", (found["id"],))


@click.command("rename")
@STORE
@click.argument("dataset")
@click.argument("new_name")
def rename(db, dataset, new_name):
    """Rename DATASET (ORGANIZATION/NAME, or an id) to NEW_NAME."""
    with Store(db) as store:
        found = dataset_named(store, dataset)
        store.datasets.update(found["id"], name=new_name)
    click.echo(f"renamed dataset {found['id']} to {new_name!r}")


@click.command("delete")
@STORE
@click.argument("dataset")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def delete(db, dataset, yes):
    """Delete DATASET (ORGANIZATION/NAME, or an id) with its dataframe and access."""
    with Store(db) as store:
        found = dataset_named(store, dataset)
        if not yes and not click.confirm(f"delete dataset {dataset} and its data?"):
            raise click.Abort()
        store.datasets.delete(found["id"])
    click.echo(f"deleted dataset {found['id']}")


@click.command("create-user")
@click.argument("db", type=click.Path(dir_okay=False))
@click.argument("name")
@click.option("--email", help="The user's e-mail address (JWTs may name the user by it).")
def create_user(db, name, email):
    """Create a user NAME in DB (created if missing); print its id."""
    with Store(db) as store:
        user = store.users.create(name, email=email)
    click.echo(f"user {user['id']} {name}")


@click.command("create-org")
@click.argument("db", type=click.Path(dir_okay=False))
@click.argument("name")
@click.option("--owner", help="The owner: a user's name or id.")
def create_org(db, name, owner):
    """Create an organization NAME in DB (created if missing); print its id."""
    with Store(db) as store, store.transaction():
        owner_id = user_named(store, owner)["id"] if owner else None
        organization = store.organizations.create(name, owner_id=owner_id)
    click.echo(f"organization {organization['id']} {name}")


def _variables(ctx, param, values) -> dict:
    """--var NAME=VALUE: VALUE as JSON when it is JSON (5, true, {"a": 1}), else text."""
    found = {}
    for item in values:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"a variable is NAME=VALUE, not {item!r}")
        try:
            found[name] = json.loads(text)
        except ValueError:
            found[name] = text
    return found


@click.command("query")
@STORE
@click.argument("document")
@click.option("--var", "variables", multiple=True, callback=_variables, metavar="NAME=VALUE",
              help="A variable of the document; VALUE is read as JSON when it is JSON, else "
              "as text (repeat).")
@click.option("--as-user", help="Run as this user (a name or id), with what the user may "
              "see and do; default: the store admin.")
def query(db, document, variables, as_user):
    """Run a GraphQL DOCUMENT ('{...}', @FILE or - for stdin) on DB and print the JSON
    answer, exactly as the server would answer it; exit code 1 when it holds errors."""
    text = _document(document)
    headers = {}
    if as_user:
        with Store(db) as store:
            headers = {"x-hasura-role": "user", "x-hasura-user-id": user_named(store, as_user)["id"]}
    answer = asyncio.run(_ask(db, {"query": text, "variables": variables}, headers))
    click.echo(json.dumps(answer, indent=2))
    if not isinstance(answer, dict) or answer.get("errors"):
        sys.exit(1)


def _document(document: str) -> str:
    if document == "-":
        return sys.stdin.read()
    if document.startswith("@"):
        try:
            with open(document[1:], encoding="utf-8") as file:
                return file.read()
        except OSError as error:
            raise InvalidValue(f"cannot read the document {document[1:]}: {error.strerror}") from None
    return document


async def _ask(db: str, body: dict, headers: dict):
    """POST the body to the server's own app, in this process (no socket): the
    same checks, limits, access rules and answers as `serve`."""
    import httpx  # loaded only by the command that needs it

    from .server.app import Server

    server = Server(db, deliver=False)
    async with server.lifespan(server.app):
        transport = httpx.ASGITransport(app=server.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            response = await client.post("/v1/graphql", json=body, headers=headers)
    return response.json()
