"""GraphQL over HTTP: clustore-lite against datasette + datasette-graphql serving the
same rows from a copy of the same SQLite file, in one run, with concurrent clients.

    .venv/bin/python benchmarks/graphql_vs_datasette.py [--orgs 200] [--requests 2000] [--concurrency 8]

datasette-graphql needs graphql-core 3.2 while Ariadne needs 3.3, so datasette runs from
a virtualenv of its own (benchmarks/.venv-datasette, made on first use)."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
import clustore_lite  # noqa: E402
from serving import free_port, running_server  # noqa: E402

DATASETTE_VENV = HERE / ".venv-datasette"


def datasette_python() -> str:
    python = DATASETTE_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(DATASETTE_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "datasette", "datasette-graphql"],
                       check=True)
    return str(python)


def build(path: Path, orgs: int) -> dict:
    with clustore_lite.open(path) as store, store.transaction():
        owners = [store.users.create(f"user{i}") for i in range(20)]
        first = None
        for number in range(orgs):
            org = store.organizations.create(f"org{number:04d}", owner_id=owners[number % 20]["id"])
            first = first or org
            for d in range(3):
                store.datasets.create(org["id"], f"d{number:04d}-{d}", owner_id=owners[d]["id"])
    return {"org": first["id"]}


QUERIES = {
    "organization(id) with fragments": (
        "query($id: uuid!) { organization(id: $id) { ...Org } } "
        "fragment Org on organization { id name owner { ...User } } fragment User on user { id name }",
        "query($id: String) { organization(filter: {id: {eq: $id}}) { nodes { ...Org } } } "
        "fragment Org on organization { id name ownerId { ...User } } fragment User on user { id name }",
    ),
    "filtered list of 50 rows": (
        '{ datasets(where: {name: {_like: "d0%"}}, order_by: {name: asc}, limit: 50) '
        "{ id name organization { id } } }",
        '{ dataset(filter: {name: {like: "d0%"}}, sort: name, first: 50) '
        "{ nodes { id name organizationId { id } } } }",
    ),
}


async def load(url: str, query: str, variables: dict, requests: int, concurrency: int):
    latencies: list[float] = []
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=concurrency)) as client:
        body = {"query": query, "variables": variables}
        answer = (await client.post(url, json=body)).json()
        assert "errors" not in answer and answer.get("data"), answer
        remaining = requests

        async def worker():
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                response = await client.post(url, json=body)
                latencies.append(time.perf_counter() - started)
                assert response.status_code == 200

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {"rps": len(latencies) / elapsed, "p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))]}


def start_datasette(path: Path):
    port = free_port()
    process = subprocess.Popen([datasette_python(), "-m", "datasette", "serve", "-i", str(path),
                                "--port", str(port), "--setting", "num_sql_threads", "3"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/-/versions.json", timeout=1).status_code == 200:
                return process, f"{url}/graphql"
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("datasette did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orgs", type=int, default=200)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    store_path, copy_path = work / "store.sqlite", work / "copy.sqlite"
    ids = build(store_path, args.orgs)
    with clustore_lite.open(store_path) as store:
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copy(store_path, copy_path)
    datasette, datasette_url = start_datasette(copy_path)
    rows = []
    try:
        with running_server(store_path) as url:
            for name, (ours, theirs) in QUERIES.items():
                variables = {"id": ids["org"]} if "$id" in ours else {}
                for concurrency in (1, args.concurrency):
                    requests = args.requests if concurrency > 1 else args.requests // 4
                    a = asyncio.run(load(f"{url}/v1/graphql", ours, variables, requests, concurrency))
                    b = asyncio.run(load(datasette_url, theirs, variables, requests, concurrency))
                    rows.append((name, concurrency, a, b))
    finally:
        datasette.kill()
        shutil.rmtree(work, ignore_errors=True)
    print("| query | clients | clustore-lite req/s | p50 / p99 ms | datasette-graphql req/s | p50 / p99 ms | ratio |")
    print("|---|---|---|---|---|---|---|")
    for name, concurrency, a, b in rows:
        print(f"| {name} | {concurrency} | {a['rps']:.0f} | {a['p50_ms']:.1f} / {a['p99_ms']:.1f} | "
              f"{b['rps']:.0f} | {b['p50_ms']:.1f} / {b['p99_ms']:.1f} | {a['rps'] / b['rps']:.2f}x |")


if __name__ == "__main__":
    main()
