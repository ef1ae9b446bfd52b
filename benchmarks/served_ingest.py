"""Served ingest: an import into a store that `clustore-lite serve` is serving, while a
client reads (GraphQL queries in a loop) and subscribes (a live query over WebSocket),
and a third process opens the store and commits a small write again and again
(`--probe-every` 0.1 s: a sensor writing ten times a second). Then, until the server's
checkpoint has copied the import's WAL into the file, the same latencies again.

Each round runs, in a rotating order and on the same data: pyarrow's IPC file write +
fsync (the baseline), the import alone on a fresh file (no other connection), the import
served (server, reader, prober), and the import alone with one late opener (a process
that opens the store `--late` s after the import began and commits one small write; its
busy timeout is cut to `--busy-ms` so that the StoreBusy a 30 s wait would raise on a
20 GB import shows up on a small one). Imports run in their own process, the timed part
is one `datasets.create` call (as in ingest.py); the table is made there, not timed.

    .venv/bin/python benchmarks/served_ingest.py              # 512 MB numeric + 512 MB mixed
    .venv/bin/python benchmarks/served_ingest.py --gb 2 --rounds 3
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa

import _common as c

sys.path.insert(0, str(c.ROOT / "tests"))
from serving import running_server  # noqa: E402

TARGET_SERVED, TARGET_ALONE = 0.9, {"numeric": 1.1, "mixed": 1.0}
WAIT_TARGET_MS, P99_TARGET_MS = 50, 50
QUERY = "{ organizations(limit: 20, order_by: {name: asc}) { id name } }"
LIVE = "subscription { dataframes(order_by: {createdAt: asc}) { id rows } }"


# -- the data ------------------------------------------------------------------------

def make_table(kind: str, gb: float, seed: int = 0) -> pa.Table:
    """`gb` GB (in memory) of numeric (16 x float64) or mixed rows, made from `seed`."""
    if kind == "numeric":
        return c.numeric_table(max(1, int(gb * 1e9 / 128)), 16, seed)
    sample = c.mixed_table(10_000, seed)
    return c.mixed_table(max(1, int(gb * 1e9 / (sample.nbytes / 10_000))), seed)


# -- worker processes ----------------------------------------------------------------

def worker(role: str, argv: list[str]) -> None:
    """The other processes of a round: they talk over stdin/stdout, one line at a time."""
    {"importer": importer, "reader": reader, "prober": prober}[role](*argv)


def importer(kind: str, gb: str, chunk_rows: str) -> None:
    import clustore_lite
    table = make_table(kind, float(gb))
    print("ready", flush=True)
    for line in sys.stdin:  # "import PATH"
        path = line.split(" ", 1)[1].strip()
        with clustore_lite.open(path) as store:
            org = store.organizations.create(f"importer-{time.time()}")
            began = time.time()
            print(f"began {began}", flush=True)
            store.datasets.create(org["id"], "import", table, chunk_rows=int(chunk_rows))
            done = time.time()
        print(json.dumps({"began": began, "done": done, "seconds": done - began}), flush=True)


def reader(url: str) -> None:
    """Queries in a loop and one live query, until stdin closes; prints what it saw."""
    import httpx
    import websockets
    seen: dict = {"queries": [], "updates": []}

    async def query_loop(stop: asyncio.Event):
        async with httpx.AsyncClient(timeout=120) as client:
            while not stop.is_set():
                started = time.time()
                answer = await client.post(f"{url}/v1/graphql", json={"query": QUERY})
                assert "errors" not in answer.json(), answer.text
                seen["queries"].append((started, time.time() - started))
                await asyncio.sleep(0.005)

    async def subscribe(stop: asyncio.Event, subscribed: asyncio.Event):
        async with websockets.connect(url.replace("http", "ws") + "/v1/graphql",
                                      subprotocols=["graphql-transport-ws"]) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
            await ws.recv()
            await ws.send(json.dumps({"id": "1", "type": "subscribe",
                                      "payload": {"query": LIVE}}))
            subscribed.set()
            while not stop.is_set():
                try:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 0.2))
                except asyncio.TimeoutError:
                    continue
                assert message["type"] == "next", message
                seen["updates"].append((time.time(), len(message["payload"]["data"]["dataframes"])))

    async def main():
        stop, subscribed = asyncio.Event(), asyncio.Event()
        tasks = [asyncio.create_task(subscribe(stop, subscribed))]
        await subscribed.wait()
        tasks.append(asyncio.create_task(query_loop(stop)))
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        stop.set()
        await asyncio.gather(*tasks)

    asyncio.run(main())
    print(json.dumps(seen), flush=True)


def prober(path: str, busy_ms: str, every: str = "0.1") -> None:
    """"loop": open + one small write, again and again until stdin closes;
    "once": wait for a line, then open + write once with a busy timeout of busy_ms."""
    import clustore_lite
    from clustore_lite.db import connection
    print("ready", flush=True)
    mode = sys.stdin.readline().strip()
    probes = []
    if mode == "once":
        connection.BUSY_TIMEOUT_MS = int(busy_ms)
        probes.append(_probe(clustore_lite, path))
    else:
        stop = threading.Event()
        threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
        while not stop.is_set():
            probes.append(_probe(clustore_lite, path))
            time.sleep(float(every))
    print(json.dumps(probes), flush=True)


def _probe(clustore_lite, path: str) -> dict:
    started = time.time()
    try:
        with clustore_lite.open(path) as store:
            opened = time.time()
            store.organizations.create(f"probe-{started}")
            return {"at": started, "open": opened - started, "commit": time.time() - opened}
    except clustore_lite.StoreBusy as error:
        return {"at": started, "busy": str(error), "waited": time.time() - started}


class Worker:
    """One worker process, started and ready."""

    def __init__(self, role: str, *args: str):
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--worker", role, *args], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, bufsize=1)
        self.expect("ready")

    def expect(self, word: str) -> str:
        line = self.process.stdout.readline()
        if not line.startswith(word):
            raise RuntimeError(f"worker answered {line!r}, not {word}...")
        return line

    def send(self, line: str) -> None:
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def finish(self):
        """Close its stdin and answer the JSON of its last line."""
        self.process.stdin.close()
        answer = json.loads(self.process.stdout.read().strip().splitlines()[-1])
        self.process.wait(60)
        return answer


# -- the cases -----------------------------------------------------------------------

def run_import(imp: Worker, path: Path, during=None) -> dict:
    imp.send(f"import {path}")
    began = float(imp.expect("began").split()[1])
    if during is not None:
        during(began)
    return json.loads(imp.process.stdout.readline())


def cases(table: pa.Table, imp: Worker, folder: Path, args, seen: dict) -> dict:
    ipc_path = folder / "table.arrow"

    def ipc_file() -> float:
        seconds = c.timed(lambda: c.write_ipc(table, ipc_path, args.chunk_rows))
        os.remove(ipc_path)
        return seconds

    def alone() -> float:
        path = folder / "alone.sqlite"
        c.remove_store(path)
        seconds = run_import(imp, path)["seconds"]
        c.remove_store(path)
        return seconds

    def late_opener() -> float:
        path = folder / "late.sqlite"
        c.remove_store(path)
        import clustore_lite
        clustore_lite.open(path).close()
        probe = Worker("prober", str(path), str(args.busy_ms))

        def during(began: float):
            time.sleep(max(0.0, began + args.late - time.time()))
            probe.send("once")
        timing = run_import(imp, path, during)
        seen.setdefault("late", []).extend(
            dict(p, import_seconds=timing["seconds"], after=p["at"] - timing["began"])
            for p in probe.finish())
        c.remove_store(path)
        return timing["seconds"]

    @contextlib.contextmanager
    def serving_load(path: Path):
        """`serve` on `path`, a reader (queries + a live query) and a prober at work."""
        c.remove_store(path)
        import clustore_lite
        with clustore_lite.open(path) as store:
            for number in range(20):
                store.organizations.create(f"org-{number:02}")
        with running_server(path) as url:
            read = Worker("reader", url)
            probe = Worker("prober", str(path), str(args.busy_ms), str(args.probe_every))
            probe.send("loop")
            time.sleep(0.2)  # both at work before the import begins
            workers = {}
            yield workers
            time.sleep(0.2)
            workers["readings"], workers["probes"] = read.finish(), probe.finish()
        c.remove_store(path)

    def served() -> float:
        path = folder / "served.sqlite"
        with serving_load(path) as workers:
            timing = run_import(imp, path)
            timing["checkpointed"] = _wal_copied(path, timing["done"])
        readings, probes = workers["readings"], workers["probes"]
        seen.setdefault("served", []).append(_window(timing, readings, probes))
        seen["served"][-1]["after"] = _window(
            {"began": timing["done"], "done": timing["checkpointed"] or timing["done"]},
            readings, probes)
        seen["served"][-1]["checkpoint"] = (timing["checkpointed"] or float("nan")) - timing["done"]
        return timing["seconds"]

    def ipc_file_loaded() -> float:
        """The baseline again, while the same server, reader and prober work on
        another file: what the machine's two cores leave to any writer then."""
        with serving_load(folder / "load.sqlite"):
            return ipc_file()

    return {"pyarrow IPC file write + fsync": ipc_file, "import alone": alone,
            "import, served (reader + subscriber + prober)": served,
            "pyarrow IPC file write + fsync, beside the same load (another file served)":
                ipc_file_loaded,
            "import alone, one late opener": late_opener}


def _wal_copied(path: Path, since: float, deadline: float = 120) -> float | None:
    """When the WAL the import left was copied into the file by the server's
    checkpoint: the next small write then cuts it back to the WAL budget."""
    from clustore_lite.db.checkpoints import WAL_BYTES
    while time.time() < since + deadline:
        try:
            if os.path.getsize(f"{path}-wal") <= WAL_BYTES * 1.1:
                return time.time()
        except FileNotFoundError:
            return time.time()
        time.sleep(0.01)
    return None


def _window(timing: dict, readings: dict, probes: list[dict]) -> dict:
    """What the other processes saw while the import ran."""
    began, done = timing["began"], timing["done"]
    during = [latency for at, latency in readings["queries"] if at + latency >= began and at <= done]
    waits = [p for p in probes if p["at"] + p.get("open", 0) + p.get("commit", 0) >= began
             and p["at"] <= done]
    seen_at = [at for at, count in readings["updates"] if count >= 1 and at >= began]
    return {"latencies": during, "queries": len(during),
            "open": max((p.get("open", p.get("waited", 0)) for p in waits), default=None),
            "commit": max((p.get("commit", 0) for p in waits), default=None),
            "busy": sum("busy" in p for p in waits), "probes": len(waits),
            "live_after_commit": (min(seen_at) - done) if seen_at else None}


# -- the report ----------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(value) -> str:
    return "—" if value is None else f"{value * 1000:,.0f}"


def run(args) -> str:
    log = c.logger(args.quiet)
    load_before = os.getloadavg()
    ratio_rows, wait_rows, notes = [], [], []
    with c.work_dir(args.dir) as folder:
        for kind in args.kinds:
            table = make_table(kind, args.gb)
            megabytes = table.nbytes / c.MB
            title = f"{kind} {table.num_rows:,} rows, {megabytes:,.0f} MB"
            if log:
                log(title)
            imp = Worker("importer", kind, str(args.gb), str(args.chunk_rows))
            seen: dict = {}
            try:
                timings = c.interleave(cases(table, imp, folder, args, seen), args.rounds,
                                       args.warmup, log)
            finally:
                imp.process.stdin.close()
                imp.process.wait(60)
            baseline = timings.names[0]
            for name in timings.names:
                ratio = timings.ratio(name, baseline)
                target = TARGET_SERVED if name.startswith("import, served") else \
                    TARGET_ALONE[kind] if name == "import alone" else None
                verdict = "" if target is None else \
                    f"≥ {target}× — {'met' if ratio >= target else 'missed'}"
                ratio_rows.append([title if name == baseline else "", name,
                                   f"{megabytes / timings.median(name):,.0f}", f"{ratio:.2f}×",
                                   c.spread(timings.ratios(name, baseline)), verdict])
            wait_rows += _wait_rows(kind, seen, args)
            served, loaded = timings.names[2], timings.names[3]
            notes.append(f"- {kind}: the served import against the baseline beside the same "
                         f"load: {timings.ratio(served, loaded):.2f}× (median; "
                         f"{c.spread(timings.ratios(served, loaded))})")
            del table
    load_after = os.getloadavg()
    return (c.markdown(["data", "path", "MB/s (median)", "vs IPC write + fsync (median)",
                        "range over rounds", "target"], ratio_rows)
            + "\n\n" + c.markdown(["data", "what the others saw during the import",
                                   "value", "target"], wait_rows)
            + "\n\n" + "\n".join(notes)
            + f"\n- load average (1 min) before {load_before[0]:.2f}, after "
              f"{load_after[0]:.2f}; {args.rounds} round(s) after {args.warmup} warm-up")


def _wait_rows(kind: str, seen: dict, args) -> list[list[str]]:
    served = seen.get("served", [])
    latencies = [x for w in served for x in w["latencies"]]
    rows = []
    if latencies:
        p99 = percentile(latencies, 0.99)
        rows.append([kind, f"served: reader's query latency p50 / p99 / max ({len(latencies)} "
                     "queries)", f"{ms(percentile(latencies, 0.5))} / {ms(p99)} / "
                     f"{ms(max(latencies))} ms",
                     f"p99 < {P99_TARGET_MS} ms — {'met' if p99 * 1000 < P99_TARGET_MS else 'missed'}"])
    else:
        rows.append([kind, "served: reader's queries during the import", "none answered", "missed"])
    for what in ("open", "commit"):
        values = [w[what] for w in served if w[what] is not None]
        worst = max(values, default=None)
        rows.append([kind, f"served: longest wait to {what} (prober, {sum(w['probes'] for w in served)} "
                     "probes)", f"{ms(worst)} ms",
                     "" if worst is None else
                     f"≤ {WAIT_TARGET_MS} ms — {'met' if worst * 1000 <= WAIT_TARGET_MS else 'missed'}"])
    after = [w["after"] for w in served if "after" in w]
    copied = [w["checkpoint"] for w in served]
    late_latencies = [x for w in after for x in w["latencies"]]
    rows.append([kind, "served, after the import: the server's checkpoint copied the WAL into "
                 "the file within (worst)", f"{ms(max(copied, default=None))} ms", ""])
    if late_latencies:
        rows.append([kind, f"served, during that checkpoint: reader's latency p50 / p99 / max "
                     f"({len(late_latencies)} queries); longest small commit",
                     f"{ms(percentile(late_latencies, 0.5))} / {ms(percentile(late_latencies, 0.99))}"
                     f" / {ms(max(late_latencies))} ms; "
                     f"{ms(max((w['commit'] or 0 for w in after), default=None))} ms", ""])
    live = [w["live_after_commit"] for w in served if w["live_after_commit"] is not None]
    rows.append([kind, "served: live query shows the new dataframe, after the import call returned (negative: before)",
                 f"{ms(max(live, default=None))} ms (worst)", ""])
    late = seen.get("late", [])
    busy = [p for p in late if "busy" in p]
    waits = [p.get("open", p.get("waited", 0)) for p in late]
    rows.append([kind, f"alone: an opener {args.late:g} s after the import began, "
                 f"busy timeout {args.busy_ms} ms", f"waited up to {ms(max(waits, default=None))} ms; "
                 f"StoreBusy {len(busy)} of {len(late)}", ""])
    return rows


def parser():
    p = c.arguments(__doc__.split("\n\n")[0])
    p.set_defaults(rounds=3)
    p.add_argument("--gb", type=float, default=0.512, help="GB (in memory) per import (default 0.512)")
    p.add_argument("--kinds", nargs="+", default=["numeric", "mixed"], choices=["numeric", "mixed"])
    p.add_argument("--chunk-rows", type=int, default=None,
                   help="rows per chunk and per IPC batch (default: the store's)")
    p.add_argument("--late", type=float, default=0.1, help="seconds before the late opener")
    p.add_argument("--probe-every", type=float, default=0.1,
                   help="seconds between the prober's small writes (default 0.1)")
    p.add_argument("--busy-ms", type=int, default=50,
                   help="the late opener's busy timeout (the store's is 30,000)")
    return p


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        return worker(argv[1], argv[2:])
    args = parser().parse_args(argv)
    if args.chunk_rows is None:
        from clustore_lite.arrow import codec
        args.chunk_rows = codec.DEFAULT_CHUNK_ROWS
    c.emit("### Served ingest\n\n" + run(args), args.output)


if __name__ == "__main__":
    sys.exit(main())
