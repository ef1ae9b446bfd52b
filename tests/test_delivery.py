"""Delivering events: real HTTP to a receiver on 127.0.0.1, real worker threads and
processes, at least once."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from click.testing import CliRunner
from receiver import Receiver, free_port

import clustore_lite
from clustore_lite.cli import main
from clustore_lite.delivery import Deliverer
from waiting import wait_for

LOCAL = "127.0.0.1"  # the receivers listen on loopback, which the policy refuses unless allowed
FAST = {"backoff": 0.0, "timeout": 5.0, "webhook_allow": LOCAL}



def trackings(store, org, count):
    with store.transaction():
        for i in range(count):
            store.trackings.create("click", organization_id=org.id, payload={"i": i})


def routed_events(store) -> set[str]:
    return {e.id for e in store.events.list(where={"deliveries": {}})}


def test_a_failing_receiver_is_retried_until_the_event_is_dead(store):
    with Receiver(status=500) as hooks:
        org = store.organizations.create("lumen", webhook=hooks.url())
        with Deliverer(store.path, max_retries=3, **FAST) as worker:
            summary = worker.run_once()
        assert (summary.delivered, summary.retrying, summary.dead) == (0, 6, 2)
        mine = [b for b in hooks.bodies() if b["event"]["data"]["new"]["id"] == org.id]
        assert [b["delivery_info"] for b in mine] == [
            {"max_retries": 3, "current_retry": n} for n in range(4)]
        assert len({b["id"] for b in mine}) == 1
        [event] = store.events.list(where={"resourceId": {"_eq": org.id}})
        assert event.status == "dead"
        [delivery] = store.events.deliveries(event.id)
        assert (delivery.status, delivery.tries, delivery.lastStatus) == ("dead", 4, 500)
        assert delivery.lastError == "HTTP 500: nope"

        # dead events stay in the file and can be sent again
        assert store.events.redeliver(event.id) == 1
        assert store.events.get(event.id).status == "pending"
        hooks.status = 200
        with Deliverer(store.path, max_retries=3, **FAST) as worker:
            assert worker.run_once().delivered == 1  # the other dead event stays dead
        assert store.events.get(event.id).status == "delivered"
        assert hooks.bodies()[-1]["delivery_info"]["current_retry"] == 0
        # a delivered event redelivered is sent again
        assert store.events.redeliver(event.id) == 1


def test_backoff_grows_exponentially_with_jitter(tmp_path):
    with Deliverer(tmp_path / "s.sqlite", backoff=1.0, backoff_max=5.0, jitter=0.25) as worker:
        for retry, base in [(0, 1), (1, 2), (2, 4), (3, 5), (10, 5)]:
            delays = [worker.delay(retry) for _ in range(50)]
            assert all(0.75 * base <= d <= 1.25 * base for d in delays)
            assert len(set(delays)) > 1
    with pytest.raises(clustore_lite.InvalidValue, match="lease"):
        Deliverer(tmp_path / "s.sqlite", lease=0.5)


def test_receiver_down_then_up_loses_nothing(store):
    port = free_port()
    org = store.organizations.create("lumen", webhook=f"http://127.0.0.1:{port}/hook")
    trackings(store, org, 20)
    stop = threading.Event()
    worker = Deliverer(store.path, max_retries=30, backoff=0.02, backoff_max=0.1, timeout=2,
                       webhook_allow=LOCAL)
    thread = threading.Thread(target=worker.run_forever, args=(stop,))
    thread.start()
    try:
        wait_for(lambda: store.event_deliveries.count(where={"tries": {"_gte": 3}}) > 0,
                 what="failed attempts")
        assert store.events.count(status="delivered") == 0
        with Receiver(port=port) as hooks:
            wait_for(lambda: store.events.count(status="pending") == 0, what="deliveries")
    finally:
        stop.set()
        thread.join()
        worker.close()
    assert store.events.count(status="delivered") == len(routed_events(store)) == 22
    assert hooks.event_ids() == routed_events(store)


def test_hasura_order_is_kept_per_resource(store):
    """The second change of a row is not delivered before the first, even when the
    first needs retries."""
    first_tries = {}

    def flaky(body):  # the first two attempts of each event fail
        first_tries[body["id"]] = first_tries.get(body["id"], 0) + 1
        return 500 if first_tries[body["id"]] <= 2 else 200

    with Receiver(status=flaky) as hooks:
        org = store.organizations.create("lumen", webhook=hooks.url())
        dataset = store.datasets.create(org.id, "d0")
        for i in range(1, 6):
            store.datasets.update(dataset.id, name=f"d{i}")
        with Deliverer(store.path, max_retries=5, **FAST) as worker:
            worker.run_once()
    mine = [b for b in hooks.bodies() if b["table"]["name"] == "dataset"]
    names = [b["event"]["data"]["new"]["name"] for b in mine]
    assert names == [f"d{i}" for i in range(6) for _ in range(3)]


def test_two_workers_never_have_the_same_attempt_in_flight(store):
    with Receiver(delay=0.005) as hooks:
        org = store.organizations.create("lumen", webhook=hooks.url())
        trackings(store, org, 300)
        workers = [Deliverer(store.path, concurrency=4, batch=8, **FAST) for _ in range(2)]
        summaries = []
        threads = [threading.Thread(target=lambda w=w: summaries.append(w.run_once()))
                   for w in workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for worker in workers:
            worker.close()
    assert hooks.overlaps == []
    assert sum(s.delivered for s in summaries) == 302
    assert all(s.delivered > 0 for s in summaries)  # both took part
    assert len(hooks.bodies()) == len(hooks.event_ids()) == 302  # leases held: no repeat


def test_leases_are_renewed_while_a_receiver_hangs(store):
    """A hang longer than the lease does not let another worker send the same
    attempt; a stopping worker gives back what it claimed but did not send."""
    with Receiver() as hooks:
        hooks.gate.clear()
        org = store.organizations.create("lumen", webhook=hooks.url())
        stops = [threading.Event(), threading.Event()]
        workers = [Deliverer(store.path, lease=1.5, poll=0.1, timeout=30, concurrency=2,
                             webhook_allow=LOCAL)
                   for _ in stops]
        claims = []  # (when it started, what it got) for every claim of the second worker
        claim = workers[1].claim

        def watched_claim(*args, **kwargs):
            started = time.time()  # the clock of leaseUntil
            got = claim(*args, **kwargs)
            claims.append((started, got))
            return got

        workers[1].claim = watched_claim
        threads = [threading.Thread(target=w.run_forever, args=(stop,))
                   for w, stop in zip(workers, stops)]
        threads[0].start()
        try:
            wait_for(lambda: hooks.in_flight, what="the first attempt")
            leased = store.event_deliveries.list(where={"leaseOwner": {"_is_null": False}})
            assert {d.leaseOwner for d in leased} == {workers[0].owner}
            lapsed = min(d.leaseUntil for d in leased) + workers[0].lease  # two leases, unrenewed
            threads[1].start()
            # no sleep: wait until the second worker has looked for work after the leases
            # as first taken would have lapsed twice over
            wait_for(lambda: any(started > lapsed for started, _ in claims), seconds=60,
                     what="a claim by the second worker after two leases")
            assert [got for _, got in claims if got] == []  # it never took over an attempt
            assert len(hooks.bodies()) == 1 and not hooks.overlaps
            held = store.event_deliveries.list(where={"leaseOwner": {"_is_null": False}})
            assert {d.id for d in held} == {d.id for d in leased}  # still the first's, renewed
            assert all(d.leaseUntil > lapsed - workers[0].lease for d in held)
            for stop in stops:
                stop.set()
            [queued] = store.event_deliveries.list(where={"event": {"resourceId": {"_eq": org.id}}})
            wait_for(lambda: store.event_deliveries.get(queued.id).leaseOwner is None,
                     what="the queued attempt to be given back")
            assert store.event_deliveries.get(queued.id).tries == 0
        finally:
            hooks.gate.set()
            for stop in stops:
                stop.set()
            for thread, worker in zip(threads, workers):
                worker.wake()
                if thread.ident is not None:  # started
                    thread.join()
                worker.close()
    assert store.events.count(status="delivered") == 1  # the access event, sent once
    assert store.events.count(status="pending") == 1    # the organization's, given back


def test_a_hanging_webhook_does_not_stall_writes(store):
    """Writes complete while a delivery hangs: the receiver holds every request until
    the gate opens, and the gate opens only after the writes are done."""
    with Receiver() as hooks:
        hooks.gate.clear()  # every request hangs until the gate opens
        org = store.organizations.create("lumen", webhook=hooks.url())
        stop = threading.Event()
        worker = Deliverer(store.path, timeout=300, webhook_allow=LOCAL)
        thread = threading.Thread(target=worker.run_forever, args=(stop,))
        thread.start()
        writes_done, failures = threading.Event(), []

        def write():
            try:
                store.trackings.create("click", organization_id=org.id)
                store.organizations.update(org.id, name="renamed")
            except Exception as error:  # noqa: BLE001 - reported below
                failures.append(error)
            writes_done.set()

        try:
            wait_for(lambda: hooks.in_flight, what="a delivery in flight")
            writer = threading.Thread(target=write)
            writer.start()
            assert writes_done.wait(120), "the writes waited for the hanging delivery"
            writer.join()
            assert failures == []
            # the delivery was still hanging all along: unanswered, its attempt leased
            assert hooks.in_flight and not hooks.gate.is_set()
            assert store.event_deliveries.count(where={"leaseOwner": {"_is_null": False}}) >= 1
            assert store.organizations.get(org.id).name == "renamed"
        finally:
            hooks.gate.set()
            stop.set()
            worker.wake()
            thread.join()
            worker.close()


def test_a_slow_webhook_does_not_hold_up_the_others(store):
    with Receiver() as slow, Receiver() as quick:
        slow.gate.clear()
        store.organizations.create("sluggish", webhook=slow.url())
        org = store.organizations.create("lumen", webhook=quick.url())
        stop = threading.Event()
        worker = Deliverer(store.path, timeout=30, concurrency=2, webhook_allow=LOCAL)
        thread = threading.Thread(target=worker.run_forever, args=(stop,))
        thread.start()
        try:
            wait_for(lambda: len(slow.in_flight) == 1, what="the slow webhook to hang")
            trackings(store, org, 10)
            wait_for(lambda: len(quick.bodies()) == 12, what="the quick webhook's events")
            slow.gate.set()
            wait_for(lambda: store.events.count(status="pending") == 0, what="the slow ones")
        finally:
            slow.gate.set()
            stop.set()
            worker.wake()
            thread.join()
            worker.close()
    assert store.events.count(status="pending") == 0
    assert len(slow.bodies()) == 2 and not slow.overlaps


def test_a_worker_killed_mid_delivery_loses_nothing(tmp_path, rng):
    """SIGKILL the `deliver` process several times while it is posting; after a
    restart, every event has arrived at least once, duplicates with the same id."""
    db = tmp_path / "s.sqlite"
    with Receiver(delay=0.01) as hooks:
        with clustore_lite.open(db) as store:
            org = store.organizations.create("lumen", webhook=hooks.url())
            trackings(store, org, 400)
            expected = routed_events(store)
        command = [sys.executable, "-m", "clustore_lite", "deliver", str(db), "--backoff", "0",
                   "--timeout", "5", "--max-retries", "20", "--concurrency", "4",
                   "--webhook-allow", LOCAL]
        orphans = 0
        for _ in range(4):
            before, more = len(hooks.bodies()), rng.randint(10, 40)
            print(f"kill after {more} more deliveries")
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                wait_for(lambda: len(hooks.bodies()) >= before + more, seconds=120,
                         what="deliveries by the new process")
            finally:
                process.send_signal(signal.SIGKILL)
                process.wait()
            with clustore_lite.open(db) as store:  # attempts the killed worker left open
                orphans += store.event_deliveries.count(where={"leaseOwner": {"_is_null": False}})
        done = subprocess.run([*command, "--once"], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    assert orphans > 0, "no kill landed mid-delivery"
    with clustore_lite.open(db) as store:
        assert store.events.count(status="delivered") == len(expected) == 402
        assert store.events.count(status="pending") == 0
    assert hooks.event_ids() == expected
    by_id = {}
    for body in hooks.bodies():
        by_id.setdefault(body["id"], []).append(body)
    for copies in by_id.values():  # a duplicate is the same event, a later retry
        assert all(c["event"] == copies[0]["event"] for c in copies)
    print(f"{len(hooks.bodies())} POSTs for {len(expected)} events after 4 SIGKILLs")


def test_delivering_1000_events_throughput(store):
    with Receiver() as hooks:
        org = store.organizations.create("lumen", webhook=hooks.url())
        trackings(store, org, 1000)
        with Deliverer(store.path, **FAST) as worker:
            started = time.perf_counter()
            summary = worker.run_once()
            elapsed = time.perf_counter() - started
    assert summary.delivered == len(hooks.bodies()) == 1002
    rate = summary.delivered / elapsed
    print(f"delivered {summary.delivered} events in {elapsed:.2f}s: {rate:.0f} events/s")
    assert rate > 50


def test_cli_deliver_and_events(tmp_path):
    db = str(tmp_path / "s.sqlite")
    runner = CliRunner()
    with Receiver(status=503) as hooks:
        with clustore_lite.open(db) as store:
            org = store.organizations.create("lumen", webhook=hooks.url())
            store.organizations.create("quiet")
        result = runner.invoke(main, ["events", db, "--status", "pending"])
        assert result.exit_code == 0
        assert result.output.count("\nevent ") + result.output.startswith("event ") == 2
        assert f"{hooks.url()}: pending, 0 attempts" in result.output

        result = runner.invoke(main, ["deliver", db, "--once", "--max-retries", "1",
                                      "--backoff", "0", "-v", "--webhook-allow", LOCAL])
        assert result.exit_code == 0, result.output
        assert "delivered 0, retrying 2, dead 2" in result.output
        assert "HTTP 503: nope" in result.output

        result = runner.invoke(main, ["events", db, "--status", "dead", "--json"])
        dead = json.loads(result.output)
        assert [e["tableName"] for e in dead] == ["access", "organization"]
        assert dead[1]["deliveries"][0]["tries"] == 2
        assert dead[1]["new"]["id"] == org.id
        result = runner.invoke(main, ["events", db, "--status", "logged"])
        assert result.output.count(" logged") == 2 and "quiet" not in result.output

        result = runner.invoke(main, ["events", db, "--redeliver", dead[1]["id"]])
        assert result.output.strip() == f"event {dead[1]['id']}: 1 delivery pending again"
        hooks.status = 200
        result = runner.invoke(main, ["deliver", db, "--once"], env={"CLUSTORE_WEBHOOK_ALLOW": LOCAL})
        assert result.output.strip() == "delivered 1, retrying 0, dead 0"

        result = runner.invoke(main, ["events", db, "--redeliver-dead"])
        assert result.output.strip() == "1 dead delivery pending again"
        result = runner.invoke(main, ["deliver", db, "--once"], env={"CLUSTORE_WEBHOOK_ALLOW": LOCAL})
        assert result.output.strip() == "delivered 1, retrying 0, dead 0"

    result = runner.invoke(main, ["events", db, "--redeliver", "not-an-id"])
    assert result.exit_code == 1 and "error: id must be a UUID" in result.output
    result = runner.invoke(main, ["info", db])
    assert "events       2 delivered, 2 logged" in result.output


@pytest.mark.skipif(not hasattr(signal, "SIGTERM"), reason="POSIX signals")
def test_cli_deliver_runs_until_stopped(tmp_path):
    db = tmp_path / "s.sqlite"
    with Receiver() as hooks:
        with clustore_lite.open(db) as store:
            store.organizations.create("lumen", webhook=hooks.url())
        process = subprocess.Popen([sys.executable, "-m", "clustore_lite", "deliver", str(db),
                                    "--webhook-allow", LOCAL],
                                   stdout=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: len(hooks.bodies()) == 2, what="the first deliveries")
            with clustore_lite.open(db) as store:  # a later write is picked up
                store.organizations.create("second", webhook=hooks.url())
            wait_for(lambda: len(hooks.bodies()) == 4, what="the later deliveries")
        finally:
            process.send_signal(signal.SIGTERM)
            out, _ = process.communicate(timeout=10)
    assert process.returncode == 0
    assert out.strip() == "delivered 4, retrying 0, dead 0"
    assert os.path.exists(db)
