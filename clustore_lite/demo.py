"""`serve --demo`: a small example store, so a new user sees something at once."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from .errors import InvalidValue
from .store import Store


def fill(store: Store) -> None:
    """An organization with a team, two datasets of real data and a clustering task
    (k-means run here, centroids and labels kept as dataframes). A store that holds
    the demo already is left as it is (a server restarted with --demo); one that
    holds other data is refused, rather than mixed with the demo's."""
    if store.organizations.count(name="demo-lab"):
        return
    if store.organizations.count() or store.users.count():
        raise InvalidValue(f"--demo fills a new store, and {store.path} already holds "
                           "organizations or users: serve it without --demo, or give a new "
                           "file for the demo")
    rng = np.random.default_rng(7)
    centers = np.array([[0.0, 0.0], [5.0, 5.0], [0.0, 6.0]])
    points = np.concatenate([rng.normal(c, 0.8, size=(400, 2)) for c in centers])
    with store.transaction():
        ana = store.users.create("ana", email="ana@demo.example")
        bob = store.users.create("bob", email="bob@demo.example")
        lab = store.organizations.create("demo-lab", owner_id=ana["id"], public="guest")
        team = store.teams.create(lab["id"], "analysts", members=[ana["id"], bob["id"]])
        store.memberships.create(lab["accessId"], "contributor", team_id=team["id"])
        blobs = store.datasets.create(
            lab["id"], "blobs", pa.table({"x": points[:, 0], "y": points[:, 1]}),
            owner_id=ana["id"], metadata={"source": "3 gaussian blobs"}, chunk_rows=256)
        store.datasets.create(
            lab["id"], "sensors",
            pa.table({"sensor": pa.array([f"s{i % 5}" for i in range(100)]),
                      "at": pa.array(np.arange(100).astype("datetime64[s]")),
                      "value": rng.random(100)}),
            owner_id=bob["id"])
        centroids, labels = _kmeans(points, k=3, rng=rng)
        store.tasks.create(
            lab["id"], "kmeans-3", dataset_id=blobs["id"], owner_id=ana["id"],
            algorithm={"name": "kmeans", "k": 3, "iter": 20, "init": "kmeans_pp"},
            identifier="demo-run-1", variables={"columns": ["x", "y"]},
            predictions={"inertia": float(_inertia(points, centroids, labels))},
            centroids=pa.table({"x": centroids[:, 0], "y": centroids[:, 1]}),
            labels=pa.table({"label": labels.astype("int32")}))


def _kmeans(points: np.ndarray, k: int, rng, iterations: int = 20):
    centroids = points[rng.choice(len(points), k, replace=False)]
    for _ in range(iterations):
        labels = np.argmin(((points[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
        centroids = np.array([points[labels == j].mean(0) if (labels == j).any() else centroids[j]
                              for j in range(k)])
    return centroids, labels


def _inertia(points, centroids, labels) -> float:
    return float(((points - centroids[labels]) ** 2).sum())
