"""Issue 12, item 7: webhook destinations (blind SSRF). Callers other than the store
admin may not write a webhook to an address the policy refuses, and the worker calls
only allowed addresses, checked on the addresses it connects to (DNS rebinding)."""

import ipaddress
import socket

import pytest
from click.testing import CliRunner
from receiver import Receiver, free_port

import clustore_lite
from clustore_lite import InvalidValue, PermissionDenied
from clustore_lite.access.destinations import DestinationRefused, WebhookPolicy
from clustore_lite.cli import main
from clustore_lite.delivery import Deliverer

INTERNAL = ["http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:8080/admin",
            "http://[::1]:6379/", "http://localhost:2375/containers/create",
            "http://10.0.0.5/hook", "http://192.168.1.1/", "http://100.100.100.200/",
            "http://[fd00:ec2::254]/", "http://[::ffff:127.0.0.1]/", "http://2130706433/",
            "http://127.1/", "http://0.0.0.0:8001/v1/graphql", "http://[fe80::1]/"]


@pytest.mark.parametrize("address, refused", [
    ("127.0.0.1", "loopback"), ("::1", "loopback"), ("169.254.169.254", "link-local"),
    ("10.1.2.3", "private"), ("192.168.0.10", "private"), ("fd00:ec2::254", "private"),
    ("100.100.100.200", "non-public"), ("0.0.0.0", "unspecified"), ("224.0.0.1", "multicast"),
    ("::ffff:127.0.0.1", "loopback"), ("64:ff9b::7f00:1", "loopback"),
    ("93.184.215.14", None), ("2606:4700::1111", None)])
def test_public_addresses_only_by_default(address, refused):
    reason = WebhookPolicy().refusal(ipaddress.ip_address(address))
    assert (reason is None) if refused is None else (refused in reason)


def test_the_allow_list_takes_networks_addresses_and_host_names():
    policy = WebhookPolicy.parse("10.0.0.0/8, 127.0.0.1,hooks.example,*.corp.example")
    for allowed in ("10.9.9.9", "127.0.0.1", "::ffff:10.0.0.1"):
        assert policy.refusal(ipaddress.ip_address(allowed)) is None
    assert policy.refusal(ipaddress.ip_address("127.0.0.2"))
    assert policy.host_allowed("HOOKS.example.") and policy.host_allowed("a.corp.example")
    assert not policy.host_allowed("corp.example") and not policy.host_allowed("evil-hooks.example")
    assert WebhookPolicy.parse(["::1"]).refusal(ipaddress.ip_address("::1")) is None
    for bad in ("foo bar", "10.0.0.0/33", "under_score.example", "*."):
        with pytest.raises(InvalidValue, match="webhook allow list"):
            WebhookPolicy.parse(bad)


def test_callers_cannot_write_webhooks_to_refused_addresses(db_path):
    with clustore_lite.open(db_path) as store:
        owner = store.users.create("olga")
        org = store.organizations.create("lab", owner_id=owner.id)
        member = store.memberships.create(org.access_id, "guest", user_id=owner.id)
        as_owner = store.as_user(owner.id)
        before = store.events.count()
        for url in INTERNAL:
            for write in (lambda: as_owner.accesses.update(org.access_id, webhook=url),
                          lambda: as_owner.memberships.update(member.id, webhook=url),
                          lambda: as_owner.datasets.create(org.id, "d", webhook=url),
                          lambda: as_owner.organizations.create("other", webhook=url)):
                with pytest.raises(DestinationRefused, match="webhook-allow"):
                    write()
        assert store.events.count() == before  # nothing changed
        # names are checked when called (a write never waits on DNS), public addresses pass
        as_owner.accesses.update(org.access_id, webhook="https://hooks.example.org/clustore")
        as_owner.memberships.update(member.id, webhook="http://93.184.215.14/hook")
        store.accesses.update(org.access_id, webhook="http://127.0.0.1:9/")  # the store admin
    with clustore_lite.open(db_path, webhook_allow="10.0.0.0/8,localhost") as store:
        store.as_user(owner.id).accesses.update(org.access_id, webhook="http://10.0.0.5/hook")
        store.as_user(owner.id).accesses.update(org.access_id, webhook="http://localhost:8080/")
        with pytest.raises(PermissionDenied):
            store.as_user(owner.id).accesses.update(org.access_id, webhook="http://127.0.0.1/")


def test_the_worker_calls_only_allowed_destinations(store):
    with Receiver() as hooks:
        org = store.organizations.create("lab", webhook=hooks.url())  # the admin: trusted to write
        with Deliverer(store.path, max_retries=0, backoff=0) as worker:
            summary = worker.run_once()
        assert hooks.bodies() == [] and summary.dead == 2
        [delivery] = store.events.deliveries(store.events.list(resourceId=org.id)[0].id)
        assert delivery.status == "dead" and "127.0.0.1, a loopback address" in delivery.lastError
        assert store.events.redeliver_dead() == 2
        with Deliverer(store.path, max_retries=0, backoff=0, webhook_allow="127.0.0.1") as worker:
            assert worker.run_once().delivered == 2
        assert len(hooks.bodies()) == 2


@pytest.fixture
def resolver(monkeypatch):
    """Answers for names under .test, in turn (the last one repeats); other names as usual."""
    answers: dict[str, list[list[str]]] = {}
    asked: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if not str(host).endswith(".test"):
            return real(host, port, *args, **kwargs)
        asked.append(host)
        turn = answers[host].pop(0) if len(answers[host]) > 1 else answers[host][0]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in turn]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers, asked


def test_a_rebinding_name_cannot_reach_what_it_was_not_checked_for(store, resolver):
    """The name answers an allowed address to the check, then a refused one: the
    connection goes to the address that was checked, resolved once."""
    answers, asked = resolver
    with Receiver(host="127.0.0.2") as hooks:
        answers["rebind.test"] = [["127.0.0.2"], ["127.0.0.1"]]
        store.organizations.create("lab", webhook=f"http://rebind.test:{hooks.port}/hook")
        with Deliverer(store.path, max_retries=0, backoff=0, webhook_allow="127.0.0.2",
                       concurrency=1) as worker:  # one connection, kept alive
            assert worker.run_once().delivered == 2
        assert len(hooks.bodies()) == 2 and asked == ["rebind.test"]


def test_every_resolved_address_is_checked(store, resolver):
    answers, _ = resolver
    port = free_port()
    with Receiver(port=port) as hooks:
        answers["mixed.test"] = [["93.184.215.14", "127.0.0.1"]]
        org = store.organizations.create("lab", webhook=f"http://mixed.test:{port}/hook")
        with Deliverer(store.path, max_retries=0, backoff=0) as worker:
            assert worker.run_once().dead == 2
    assert hooks.bodies() == []
    [delivery] = store.events.deliveries(store.events.list(resourceId=org.id)[0].id)
    assert "mixed.test refused: it resolves to 127.0.0.1" in delivery.lastError


def test_the_command_line_takes_the_policy_from_a_flag_or_the_environment(tmp_path):
    db = str(tmp_path / "s.sqlite")
    runner = CliRunner()
    with Receiver() as hooks:
        with clustore_lite.open(db) as store:
            store.organizations.create("lab", webhook=hooks.url())
        result = runner.invoke(main, ["deliver", db, "--once", "--webhook-allow", "not a host"])
        assert result.exit_code == 2 and "webhook allow list" in result.output
        result = runner.invoke(main, ["deliver", db, "--once", "--max-retries", "3"])
        assert result.output.strip() == "delivered 0, retrying 2, dead 0"
        with clustore_lite.open(db) as store:
            store.db.execute("UPDATE event_delivery SET nextTryAt = 0")  # due again now
        result = runner.invoke(main, ["deliver", db, "--once"],
                               env={"CLUSTORE_WEBHOOK_ALLOW": "127.0.0.0/8"})
        assert result.output.strip() == "delivered 2, retrying 0, dead 0"
    assert len(hooks.bodies()) == 2
