"""The differential access test (issue 12) through the real server: the store and each
caller's copy (every value that caller cannot read changed, see access_differential.py)
are served side by side; GraphQL where / order_by / nested selections / aggregates,
generated for a random sample of the catalog's paths (every masked column at depth 0
and 1 among them), and a subscription, must answer the same on both. The seed is
printed; DIFFERENTIAL_SEED=<seed> replays a run."""

import asyncio
import json
import random
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import jwt
import pytest
import websockets

from access_differential import CALLERS, SEED, graphql_documents, subscription_document, world
from serving import HTTP, running_server

ADMIN, JWT_SECRET = "admin-secret-for-differential", "jwt-secret-for-the-differential-test-0123"
SAMPLE = 60  # targets per caller (of about 800)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The store and the copies, each behind its own server (started side by side)."""
    print(f"differential seed {SEED} (replay with DIFFERENTIAL_SEED={SEED})")
    store, ids, copies = world(tmp_path_factory.mktemp("differential-server"), random.Random(SEED))
    env = {"CLUSTORE_ADMIN_SECRET": ADMIN, "CLUSTORE_JWT_SECRET": JWT_SECRET}
    paths = {"store": store.path, **{caller: copy.path for caller, copy in copies.items()}}
    with ExitStack() as stack:
        def start(path):
            server = running_server(path, "--no-deliver", env=env)
            return server, server.__enter__()
        with ThreadPoolExecutor(4) as pool:
            started = dict(zip(paths, pool.map(start, paths.values())))
        for server, _ in started.values():
            stack.push(server)
        yield store, ids, {name: url for name, (_, url) in started.items()}
    for copy in copies.values():
        copy.close()
    store.close()


def headers(caller: str, ids: dict) -> dict:
    if caller == "anonymous":
        return {}
    if caller == "guest_token":
        return {"X-Clusauth-Token": ids["guest_token"]}
    claims = {"sub": ids[caller], "exp": int(time.time()) + 600}
    return {"X-Clusauth-Token": jwt.encode(claims, JWT_SECRET, "HS256")}


def post(url: str, query: str, caller_headers: dict) -> dict:
    response = HTTP.post(f"{url}/v1/graphql", json={"query": query}, headers=caller_headers, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("caller", CALLERS)
def test_graphql_answers_do_not_depend_on_what_the_caller_cannot_read(served, caller):
    store, ids, urls = served
    documents = graphql_documents(store, random.Random(f"{SEED}-{caller}-graphql"), SAMPLE)
    sent = headers(caller, ids)
    wrong, fields = [], 0
    for document in documents:
        expected, got = post(urls["store"], document, sent), post(urls[caller], document, sent)
        assert "errors" not in expected, (expected["errors"], document)  # the queries are valid
        fields += len(expected["data"])
        wrong += [f"{key}: {expected['data'][key]} on the store, {got.get('data', got)}"
                  f" on the copy" for key in expected["data"]
                  if got.get("data", {}).get(key) != expected["data"][key]]
    print(f"{caller}: {fields} root fields in {len(documents)} documents")
    assert not wrong, f"seed {SEED}: {len(wrong)} fields differ:\n" + "\n".join(wrong[:10])


async def first_answer(url: str, query: str, caller_headers: dict) -> dict:
    async with websockets.connect(url.replace("http", "ws") + "/v1/graphql",
                                  subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"headers": caller_headers}}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 30))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
        return json.loads(await asyncio.wait_for(ws.recv(), 30))["payload"]


@pytest.mark.parametrize("caller", CALLERS)
def test_subscriptions_do_not_depend_on_what_the_caller_cannot_read(served, caller):
    """One generated selection per caller, as a subscription's first answer."""
    store, ids, urls = served
    query = subscription_document(store, random.Random(f"{SEED}-{caller}-live"))
    sent = headers(caller, ids)
    expected = asyncio.run(first_answer(urls["store"], query, sent))
    assert "errors" not in expected, expected
    assert asyncio.run(first_answer(urls[caller], query, sent)) == expected, query
