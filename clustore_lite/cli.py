"""The `clustore-lite` command."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import sys
import threading

import apsw
import click

from . import cli_admin, cli_data
from . import demo as demo_data
from .access import destinations
from .catalog import DATA_MODEL, TABLES
from .db import maintenance
from .db.opening import writable
from .db.sqlite_errors import translated
from .errors import ClustoreError
from .model import eventlog
from .store import Store


class Command(click.Group):
    """Store errors, SQLite's and the system's (a full disk writing an export) become
    one clear line and exit code 1, not a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (ClustoreError, apsw.Error, OSError) as error:
            click.echo(f"error: {one_line(error)}", err=True)
            sys.exit(1)


def one_line(error: BaseException) -> str:
    """What the user is told of an error that ends a command."""
    if isinstance(error, apsw.Error):
        ours = translated(error)
        return str(ours) if ours is not None else f"SQLite: {error}"
    if isinstance(error, OSError) and error.strerror:
        where = f": {error.filename}" if error.filename else ""
        return f"{error.strerror}{where}"
    return str(error)


@click.group(cls=Command, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="clustore-lite")
def main():
    """clustore-lite: Clustore's team data and chunked Arrow dataframes in one SQLite file.

    DATASET arguments take ORGANIZATION/NAME or a dataset's id. Shell completion
    (bash): eval "$(_CLUSTORE_LITE_COMPLETE=bash_source clustore-lite)"; zsh_source
    and fish_source for zsh and fish."""


for _command in (cli_data.import_, cli_data.export, cli_admin.ls, cli_admin.rename,
                 cli_admin.delete, cli_admin.create_user, cli_admin.create_org, cli_admin.query):
    main.add_command(_command)


WEBHOOK_ALLOW = click.option(
    "--webhook-allow", envvar=destinations.ENV, callback=lambda ctx, param, value: _policy(value),
    help="Webhook destinations allowed besides public addresses, comma-separated networks and "
         "host names (10.0.0.0/8,127.0.0.1,hooks.example,*.example.org); loopback, private and "
         f"link-local addresses are refused otherwise (env {destinations.ENV}).")


def _policy(value):
    try:
        return destinations.WebhookPolicy.parse(value)
    except ClustoreError as error:
        raise click.BadParameter(str(error)) from None


def _listed(ctx, param, values) -> list[str]:
    """Repeated options and comma-separated environment values, as one list."""
    return [item.strip() for value in values or () for item in value.split(",") if item.strip()]


@main.command("serve")
@click.argument("db", type=click.Path(dir_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True, envvar="CLUSTORE_HOST", show_envvar=True,
              help="Address to listen on. Without an admin secret, only a loopback one.")
@click.option("--port", default=8001, show_default=True, type=click.IntRange(0, 65535),
              envvar="CLUSTORE_PORT", show_envvar=True, help="Port to listen on; 0 picks a free one.")
@click.option("--demo", is_flag=True, envvar="CLUSTORE_DEMO", show_envvar=True,
              help="Fill the store with a small example first.")
@click.option("--admin-secret", envvar="CLUSTORE_ADMIN_SECRET", show_envvar=True, help="Store admin secret. "
              "Without one, every request is the store admin and only loopback is served.")
@click.option("--jwt-secret", envvar="CLUSTORE_JWT_SECRET", show_envvar=True, help="HS256 secret of users' JWTs.")
@click.option("--max-body-mb", default=256, show_default=True, type=click.IntRange(min=1),
              envvar="CLUSTORE_MAX_BODY_MB", show_envvar=True, help="Largest request body accepted (413 beyond).")
@click.option("--max-decoded-mb", default=1024, show_default=True, type=click.IntRange(min=1),
              envvar="CLUSTORE_MAX_DECODED_MB", show_envvar=True,
              help="Most an Arrow body may hold once decompressed.")
@click.option("--allowed-host", "allowed_hosts", multiple=True, callback=_listed,
              envvar="CLUSTORE_ALLOWED_HOSTS", show_envvar=True, help="A host name the server is served as, "
              "besides addresses, localhost and this machine's name (repeat, or comma-"
              "separated; *.example.org patterns; * for any).")
@click.option("--cors-origin", "cors_origins", multiple=True, callback=_listed,
              envvar="CLUSTORE_CORS_ORIGINS", show_envvar=True, help="A web page origin (https://app.example) "
              "allowed to call the server from a browser (repeat, or comma-separated).")
@click.option("--no-deliver", is_flag=True, envvar="CLUSTORE_NO_DELIVER", show_envvar=True,
              help="Do not deliver events from this server (run `clustore-lite deliver`).")
@click.option("--max-retries", default=None, type=click.IntRange(min=0),
              envvar="CLUSTORE_MAX_RETRIES", show_envvar=True,
              help="Retries of a webhook delivery before it is dead.")
@click.option("--read-only", "read_only", is_flag=True, envvar="CLUSTORE_READ_ONLY", show_envvar=True,
              help="Only read DB: mutations are refused (code read-only), no event is "
                   "delivered. Chosen by itself when DB cannot be written.")
@click.option("--log-level", default="warning", show_default=True, envvar="CLUSTORE_LOG_LEVEL", show_envvar=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]),
              help="What the server logs.")
@click.option("--access-log", is_flag=True, envvar="CLUSTORE_ACCESS_LOG", show_envvar=True,
              help="Log one line per request (at info level).")
@click.option("--durability", default="full", show_default=True, envvar="CLUSTORE_DURABILITY",
              show_envvar=True, type=click.Choice(["full", "normal"]),
              help="full: a write is answered once it is on disk; normal: answered before "
                   "its fsync (faster small writes; a power cut may lose the last ones).")
@WEBHOOK_ALLOW
def serve(db, host, port, demo, admin_secret, jwt_secret, max_body_mb, max_decoded_mb,
          allowed_hosts, cors_origins, no_deliver, max_retries, log_level, access_log,
          durability, webhook_allow, read_only):
    """Serve DB (created if missing) as Clustore's GraphQL API on http://HOST:PORT.
    Every option can also be set by its CLUSTORE_* environment variable."""
    import uvicorn

    from .server.app import create_app
    from .server.http_protocol import BoundedHttpProtocol

    loopback = host == "localhost" or _is_loopback(host)
    if not admin_secret and not loopback:
        raise click.UsageError(f"serving {host} without an admin secret would make everyone "
                               "store admin: set --admin-secret or CLUSTORE_ADMIN_SECRET")
    sock = _listen(host, port)  # before the store file is made: a taken port changes nothing
    if not read_only and os.path.exists(db) and not writable(db):
        read_only = True
        click.echo(f"note: {db} cannot be written (read-only file, directory or disk): "
                   "serving it read-only, mutations are refused and no event is delivered; "
                   "restart the server once it is writable", err=True)
    if demo:
        with Store(db) as store:
            demo_data.fill(store)
    app = create_app(db, admin_secret=admin_secret, jwt_secret=jwt_secret,
                     max_body_bytes=max_body_mb << 20, max_decoded_bytes=max_decoded_mb << 20,
                     allowed_hosts=allowed_hosts, cors_origins=cors_origins,
                     deliver=not no_deliver,
                     delivery_options={} if max_retries is None else {"max_retries": max_retries},
                     webhook_allow=webhook_allow, readonly=read_only,
                     durability=durability)
    address, real_port = sock.getsockname()[:2]
    shown = f"[{address}]" if ":" in address else address
    mode = " read-only" if read_only else ""
    click.echo(f"serving {db}{mode} on http://{shown}:{real_port}/v1/graphql", err=True)
    if access_log and log_level in ("critical", "error", "warning"):
        log_level = "info"  # uvicorn logs each request at info level
    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, access_log=access_log,
                                           http=BoundedHttpProtocol, ws="websockets-sansio"))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # Ctrl-C after a clean shutdown, as uvicorn.run takes it
        pass
    if not server.started:
        raise ClustoreError("the server did not start (see the log above)")


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or one clear line about why there is none."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as error:
        raise ClustoreError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    sock.set_inheritable(True)
    return sock


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@main.command("info")
@click.argument("db", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def info(db, as_json):
    """What the store file holds."""
    with Store(db, readonly=True) as store:
        report = describe(store)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"{report['path']}: {report['bytes']} bytes, schema version "
               f"{report['schema_version']}, journal {report['journal_mode']}")
    for table, count in report["rows"].items():
        click.echo(f"  {table:<12} {count}")
    if report["events"]:
        counts = ", ".join(f"{n} {status}" for status, n in report["events"].items())
        click.echo(f"  {'events':<12} {counts}")
    for d in report["datasets"]:
        click.echo(f"  dataset {d['id']} {d['organization']}/{d['name']}: "
                   f"{d['rows']} rows x {d['dim']} columns, {d['size']} bytes")


def describe(store: Store) -> dict:
    db = store.db
    datasets = db.query(
        "SELECT d.id, d.name, o.name AS organization, f.rows, f.dim, f.size FROM dataset d "
        "JOIN organization o ON o.id = d.organizationId "
        "LEFT JOIN dataframe f ON f.id = d.dataframeId ORDER BY o.name, d.name")
    return {
        "path": store.path,
        "bytes": os.path.getsize(store.path),
        "schema_version": db.execute("PRAGMA user_version").fetchone()[0],
        "journal_mode": db.execute("PRAGMA journal_mode").fetchone()[0],
        "rows": {t: db.execute(f'SELECT count(*) FROM "{t}" r WHERE '
                               f"{TABLES[t].exists_sql('r') or 1}").fetchone()[0]
                 for t in DATA_MODEL},
        "datasets": datasets,
        "events": {row["status"]: row["n"] for row in db.query(
            "SELECT status, count(*) AS n FROM event GROUP BY status ORDER BY status")},
    }


@main.command("deliver")
@click.argument("db", type=click.Path(exists=True, dir_okay=False))
@click.option("--once", is_flag=True, help="Deliver what is due now, then stop.")
@click.option("--max-retries", default=eventlog.DEFAULT_MAX_RETRIES, show_default=True, type=int,
              help="Retries after the first attempt before a delivery is dead.")
@click.option("--timeout", default=10.0, show_default=True, type=float,
              help="Seconds for each phase of a POST (connect, send, read).")
@click.option("--backoff", default=10.0, show_default=True, type=float,
              help="Seconds before the first retry; doubled at each retry.")
@click.option("--backoff-max", default=3600.0, show_default=True, type=float,
              help="Seconds between retries at most (the doubling stops there).")
@click.option("--concurrency", default=16, show_default=True, type=int,
              help="POSTs in flight at once (at most half of them to one URL).")
@click.option("--verbose", "-v", is_flag=True, help="One line per attempt, on stderr.")
@WEBHOOK_ALLOW
def deliver(db, once, max_retries, timeout, backoff, backoff_max, concurrency, verbose,
            webhook_allow):
    """POST the store's pending events to their webhooks (Hasura's payload), retrying
    with backoff; runs until interrupted unless --once. Several may run at once."""
    from . import delivery as ev  # httpx: loaded only by the commands that POST

    def show(outcome: ev.Outcome):
        a = outcome.attempt
        result = "delivered" if outcome.ok else outcome.error
        click.echo(f"event {a.event_id} -> {a.url} (retry {a.current_retry}): {result}", err=True)

    with ev.Deliverer(db, max_retries=max_retries, timeout=timeout, backoff=backoff,
                      backoff_max=backoff_max, concurrency=concurrency,
                      on_outcome=show if verbose else None, webhook_allow=webhook_allow) as worker:
        if once:
            summary = worker.run_once()
        else:
            stop = threading.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: (stop.set(), worker.wake()))
            summary = worker.run_forever(stop)
    click.echo(str(summary))


@main.command("events")
@click.argument("db", type=click.Path(exists=True, dir_okay=False))
@click.option("--status", type=click.Choice(eventlog.STATUSES),
              help="logged (no recipient), pending, delivered or dead.")
@click.option("--table", help="Only events of this table (organization, dataset, ...).")
@click.option("--limit", type=int, help="The most recent N events.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--redeliver", "redeliver", metavar="EVENT_ID",
              help="Send this event again (dead or pending deliveries, else all of them).")
@click.option("--redeliver-dead", is_flag=True, help="Make every dead delivery pending again.")
def events(db, status, table, limit, as_json, redeliver, redeliver_dead):
    """The event log, oldest first, with each event's failing deliveries."""
    with Store(db, readonly=not (redeliver or redeliver_dead)) as store:
        if redeliver_dead:
            count = store.events.redeliver_dead()
            click.echo(f"{count} dead deliver{'y' if count == 1 else 'ies'} pending again")
            return
        if redeliver:
            count = store.events.redeliver(redeliver)
            click.echo(f"event {redeliver}: {count} deliver{'y' if count == 1 else 'ies'} "
                       "pending again")
            return
        where = {k: {"_eq": value} for k, value in (("status", status), ("tableName", table))
                 if value}
        found = store.events.list(where=where, order_by={"seq": "desc"}, limit=limit)[::-1]
        deliveries = {}
        shown = {"_and": [{"event": where}, {"seq": {"_gte": found[0]["seq"] if found else 0}}]}
        for row in store.event_deliveries.list(where=shown, order_by={"url": "asc"}):
            deliveries.setdefault(row["eventId"], []).append(row)
    if as_json:
        click.echo(json.dumps([{**e, "deliveries": deliveries.get(e["id"], [])} for e in found],
                              indent=2))
        return
    for e in found:
        click.echo(f"event {e['id']} {e['createdAt']} {e['op']} {e['tableName']} "
                   f"{e['resourceId']} {e['status']}")
        for d in deliveries.get(e["id"], []):
            if d["status"] != "delivered":
                tries = f"{d['tries']} attempt{'' if d['tries'] == 1 else 's'}"
                last = f", {d['lastError']}" if d["lastError"] else ""
                click.echo(f"  {d['url']}: {d['status']}, {tries}{last}")


@main.command("push")
@click.argument("db", type=click.Path(exists=True, dir_okay=False))
@click.argument("url")
@click.option("--batch-mb", default=64, show_default=True, type=click.IntRange(min=1),
              help="Chunk megabytes per PostgreSQL transaction.")
@click.option("--full", is_flag=True,
              help="Compare every row again, not only those changed since the last push "
                   "(repairs rows changed or deleted in PostgreSQL).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def push(db, url, batch_mb, full, quiet):
    """Mirror the store DB into the PostgreSQL database at URL (postgresql://...).

    The first push creates the tables; later ones send only what changed and delete
    what is gone. A push cut short is finished by the next one. Rows whose name is
    taken in PostgreSQL by another store, and rows PostgreSQL cannot hold (a NUL
    character), are listed and kept back with what depends on them (exit code 3)."""
    try:
        from .mirror import postgres  # psycopg is only needed here
    except ImportError as missing:
        raise ClustoreError(f"push needs {missing.name}: pip install 'clustore-lite[postgres]'")

    with Store(db) as store, cli_data.progress_bar(quiet, unit="B", unit_scale=True,
                                                   desc="push") as bar:
        report = postgres.push(store, url, batch_bytes=batch_mb * 2**20, full=full,
                               progress=lambda table, nbytes: bar.update(nbytes))
    click.echo(report.summary())
    if report.last_pushed_from:
        click.echo(f"note: this store last pushed from {report.last_pushed_from}. If that "
                   "file still exists, this one is a copy: a copy must not push (each would "
                   "delete the other's new rows); delete its clustore_origin table first to "
                   "make it a store of its own.", err=True)
    for conflict in report.conflicts:
        click.echo(f"conflict: {conflict}", err=True)
    for refused in report.refused:
        click.echo(f"refused: {refused}", err=True)
    causes = [f"{len(found)} {what}" for found, what in (
        (report.conflicts, "name conflict(s)"), (report.refused, "row(s) PostgreSQL cannot hold"))
        if found]
    if causes:
        kept = len(report.conflicts) + len(report.refused) + report.held_back
        click.echo(f"error: {' and '.join(causes)} kept {kept} rows out of PostgreSQL; change "
                   "those rows in this store (or in PostgreSQL) and push again", err=True)
        sys.exit(3)


@main.command("hasura-metadata")
@click.argument("db", type=click.Path(exists=True, dir_okay=False))
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--webhook-env", default="CLUSTORE_WEBHOOK_URL", show_default=True,
              help="Environment variable holding the event triggers' webhook (a relay).")
@click.option("--database-url-env", default="HASURA_GRAPHQL_DATABASE_URL", show_default=True,
              help="Environment variable holding the PostgreSQL URL, as Hasura sees it.")
def hasura_metadata(db, out_dir, webhook_env, database_url_env):
    """Write Hasura metadata (v3 directory) for the PostgreSQL mirror of the store DB:
    tables with Clustore's root fields, relationships, permissions, event triggers.
    Apply it with `hasura metadata apply` after a first `push`."""
    from .mirror import hasura

    with Store(db) as store:  # refuses a store newer than this clustore-lite
        version = store.db.execute("PRAGMA user_version").fetchone()[0]
    written = hasura.write_metadata(out_dir, webhook_env=webhook_env,
                                    database_url_env=database_url_env)
    click.echo(f"wrote Hasura metadata v3 for {len(hasura.ORDER)} tables (store schema "
               f"version {version}) to {out_dir}: {len(written)} files")


@main.command("backup")
@click.argument("db", type=click.Path(exists=True, dir_okay=False))
@click.argument("dest", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Replace DEST if it exists.")
@click.option("--pages-per-step", default=maintenance.PAGES_PER_STEP, show_default=True,
              type=click.IntRange(min=1), help="Pages copied between two short pauses.")
def backup(db, dest, force, pages_per_step):
    """Copy DB to DEST consistently while other processes keep writing to it."""
    result = maintenance.backup(db, dest, overwrite=force, pages_per_step=pages_per_step)
    click.echo(f"backed up {db} to {result.path}: {result.pages} pages, {result.bytes} bytes "
               f"in {result.seconds:.2f} s")


@main.command("vacuum")
@click.argument("db", type=click.Path(exists=True, dir_okay=False))
@click.option("--full", is_flag=True, help="Rebuild the whole file (also defragments it).")
def vacuum_(db, full):
    """Give the space of deleted rows back to the disk (incremental where the file
    allows; a file from before incremental vacuums is rebuilt once)."""
    with Store(db) as store:
        click.echo(store.vacuum(full).text())


@main.command("check")
@click.argument("db", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--repair-checksums", is_flag=True,
              help="First add checksums to chunks written before they existed (writes DB).")
def check(db, as_json, repair_checksums):
    """Verify DB: SQLite integrity and foreign keys, every chunk's Arrow data and checksum,
    and rows and sizes. Exits with status 1 if anything is wrong."""
    if repair_checksums:
        with Store(db) as store:
            click.echo(store.repair_checksums().text(), err=as_json)
    report = maintenance.check(db)
    click.echo(report.to_json() if as_json else report.text())
    if not report.ok:
        sys.exit(1)


# `clustore-lite --help` lists every command in one line, not a cut-off sentence.
SHORT_HELP = {
    "serve": "Serve DB as Clustore's GraphQL API (Hasura's conventions).",
    "import": "Import a CSV, TSV, Parquet or Arrow file as a dataset.",
    "export": "Write a dataset to a CSV, TSV, Parquet or Arrow file.",
    "ls": "List organizations, or the datasets of one.",
    "rename": "Rename a dataset.",
    "delete": "Delete a dataset and its data.",
    "create-user": "Create a user.",
    "create-org": "Create an organization.",
    "query": "Run a GraphQL document and print the JSON answer.",
    "info": "What the store file holds.",
    "deliver": "POST pending events to their webhooks, with retries.",
    "events": "The event log and its failing deliveries.",
    "push": "Mirror the store into PostgreSQL.",
    "hasura-metadata": "Write Hasura metadata for the PostgreSQL mirror.",
    "backup": "Copy the store consistently while others write.",
    "check": "Verify the store file; exit 1 on a problem.",
    "vacuum": "Give the space of deleted rows back to the disk.",
}
for _name, _text in SHORT_HELP.items():
    main.commands[_name].short_help = _text
