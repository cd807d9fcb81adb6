"""``tokenledger relay``: every event of the log in a NATS JetStream stream, once, in log order,
as CloudEvents; resumed from the stream after a restart or a kill -9; NATS being unreachable
is said in one line per attempt and retried.

Against the NATS server at ``TOKENLEDGER_TEST_NATS`` (127.0.0.1:4222 by default); each test
has its own stream and subject, deleted at its end. Every wait has a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import nats
import nats.errors
import nats.js.errors
import pytest
from click.testing import CliRunner

from helpers import assert_one_line_error
from tokenledger.cli import cli
from tokenledger.domain.events import OrgCreated, UserCreated
from tokenledger.store import EventStore, RecordedEvent
from tokenledger.store.mapper import to_pending

NATS_URL = os.environ.get("TOKENLEDGER_TEST_NATS", "nats://127.0.0.1:4222")
IN_CI = os.environ.get("CI", "").lower() == "true"

CLI = [sys.executable, "-c", "from tokenledger.cli import main; main()"]

#: Generous: only a failure ever waits this long.
WAIT = 60.0

#: The shortest duplicate window JetStream accepts (seconds). The tests' streams use it, so
#: that what keeps an event from being stored twice is the relay resuming from the stream,
#: not the stream remembering message ids.
SHORT_DUPLICATE_WINDOW = 0.1


@dataclass(frozen=True)
class Target:
    stream: str
    subject: str

    def args(self, *more: str, to: str = NATS_URL) -> list[str]:
        return [
            "relay",
            "--to",
            to,
            "--stream",
            self.stream,
            "--subject",
            self.subject,
            *more,
        ]


@dataclass(frozen=True)
class Message:
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def position(self) -> int:
        return int(self.headers["Tl-Position"])


def run_nats(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, WAIT))


async def _connect() -> nats.NATS:
    async def quiet(_error: Exception) -> None:
        return

    return await nats.connect(
        NATS_URL, allow_reconnect=False, max_reconnect_attempts=1, error_cb=quiet
    )


async def _create_stream(target: Target) -> None:
    client = await _connect()
    try:
        await client.jetstream().add_stream(
            name=target.stream,
            subjects=[target.subject],
            duplicate_window=SHORT_DUPLICATE_WINDOW,
        )
    finally:
        await client.close()


async def _delete_stream(name: str) -> None:
    client = await _connect()
    try:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await client.jetstream().delete_stream(name)
    finally:
        await client.close()


async def _stored(name: str) -> int:
    client = await _connect()
    try:
        return (await client.jetstream().stream_info(name)).state.messages
    finally:
        await client.close()


async def _messages(name: str) -> list[Message]:
    client = await _connect()
    try:
        js = client.jetstream()
        last = (await js.stream_info(name)).state.last_seq
        messages = []
        for sequence in range(1, last + 1):
            raw = await js.get_msg(name, sequence)
            messages.append(Message(dict(raw.headers or {}), json.loads(raw.data or b"")))
        return messages
    finally:
        await client.close()


def messages(target: Target) -> list[Message]:
    """Every message of the stream, in stream order."""
    result: list[Message] = run_nats(_messages(target.stream))
    return result


def stored(target: Target) -> int:
    count: int = run_nats(_stored(target.stream))
    return count


def wait_stored(target: Target, at_least: int, process: subprocess.Popen[str]) -> int:
    """How many messages the stream holds, once it holds ``at_least`` (the relay running)."""

    async def poll() -> int:
        client = await _connect()
        try:
            js = client.jetstream()
            while True:
                try:
                    count = (await js.stream_info(target.stream)).state.messages
                except nats.js.errors.NotFoundError:
                    count = 0  # not created yet
                if count >= at_least:
                    return count
                assert process.poll() is None, process.communicate()
                await asyncio.sleep(0.005)
        finally:
            await client.close()

    count: int = run_nats(poll())
    return count


@pytest.fixture(scope="session")
def nats_server() -> str:
    try:
        run_nats(_delete_stream("TOKENLEDGER_TEST_PROBE"))
    except (OSError, nats.errors.Error) as exc:
        reason = f"NATS is not reachable at {NATS_URL}: {exc}"
        if IN_CI:
            pytest.fail(f"CI=true requires NATS. {reason}")
        pytest.skip(reason)
    return NATS_URL


@pytest.fixture
def target(nats_server: str) -> Iterator[Target]:
    """A stream of this test's own (created with the shortest duplicate window), deleted
    at its end."""
    name = uuid.uuid4().hex[:12]
    created = Target(stream=f"TLTEST_{name}", subject=f"tltest.{name}.events")
    run_nats(_create_stream(created))
    yield created
    run_nats(_delete_stream(created.stream))


@pytest.fixture
def url(store: EventStore) -> str:
    return store.engine.url.render_as_string(hide_password=False)


def append_events(store: EventStore, count: int) -> list[RecordedEvent]:
    """``count`` new events of the ledger's own kinds (the relay decodes each one)."""
    tag = uuid.uuid4().hex[:8]
    events = [
        OrgCreated(org=f"o{tag}{n}") if n % 2 else UserCreated(email=f"u{n}@{tag}.example")
        for n in range(count)
    ]
    return store.append([to_pending(event) for event in events], actor="t")


def run_relay(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``tokenledger --db URL ARGS`` in a process of its own: a relay that retried forever
    where it should not would fail the test, not hang it."""
    return subprocess.run(
        [*CLI, "--db", url, *args],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("TOKENLEDGER_")},
        timeout=WAIT,
        check=False,
    )


def relay_once(url: str, target: Target) -> str:
    """Run ``relay --once``; what it said on stderr."""
    done = run_relay(url, *target.args("--once"))
    assert done.returncode == 0, done.stderr
    return done.stderr


def assert_refused(done: subprocess.CompletedProcess[str], code: int, fragment: str) -> None:
    """One line on stderr, the category's exit code, no traceback."""
    assert done.returncode == code, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("tokenledger: error: ")
    assert fragment in lines[0]


def assert_the_log_once_in_order(store: EventStore, target: Target) -> None:
    log = list(store.read_all())
    got = messages(target)
    assert [m.position for m in got] == list(range(1, len(log) + 1))
    assert [m.headers["Nats-Msg-Id"] for m in got] == [r.event_id for r in log]
    assert [m.body["id"] for m in got] == [r.event_id for r in log]
    assert [m.body["tlposition"] for m in got] == [r.position for r in log]


def start_relay(url: str, target: Target, *more: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, "--db", url, *target.args(*more)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("TOKENLEDGER_")},
    )


def stop(process: subprocess.Popen[str], signum: int) -> tuple[int, str]:
    """Send ``signum``; the exit code and stderr once it has ended."""
    process.send_signal(signum)
    try:
        _out, err = process.communicate(timeout=WAIT)
    finally:
        process.kill()
    return process.returncode, err


# -- what the stream holds ------------------------------------------------------------------


def test_once_publishes_each_event_once_in_order_as_cloudevents(
    store: EventStore, url: str, target: Target
) -> None:
    log = append_events(store, 25)
    said = relay_once(url, target)
    assert said.strip().splitlines() == ["tokenledger: relay: relayed up to position 25"]
    assert_the_log_once_in_order(store, target)
    first = messages(target)[0]
    assert first.headers["Content-Type"] == "application/cloudevents+json"
    assert first.body["specversion"] == "1.0"
    assert first.body["type"] == f"io.tokenledger.{log[0].event_type}.v1"
    assert first.body["source"] == "urn:tokenledger"
    assert first.body["subject"] == log[0].stream_id
    assert first.body["data"]["email"] == json.loads(log[0].data)["email"]


def test_a_rerun_resumes_from_the_stream(store: EventStore, url: str, target: Target) -> None:
    append_events(store, 10)
    relay_once(url, target)
    # Past the stream's duplicate window: a relay that started over, rather than after the
    # stream's last message, would now store every event a second time.
    time.sleep(SHORT_DUPLICATE_WINDOW * 2)
    relay_once(url, target)
    assert stored(target) == 10
    append_events(store, 5)
    assert relay_once(url, target).strip() == "tokenledger: relay: relayed up to position 15"
    assert_the_log_once_in_order(store, target)


def test_the_stream_is_created_when_missing(store: EventStore, url: str, nats_server: str) -> None:
    name = uuid.uuid4().hex[:12]
    target = Target(stream=f"TLTEST_{name}", subject=f"tltest.{name}.events")
    try:
        append_events(store, 3)
        relay_once(url, target)
        assert_the_log_once_in_order(store, target)
    finally:
        run_nats(_delete_stream(target.stream))


@pytest.mark.slow
def test_a_kill_9_midway_loses_and_repeats_nothing(
    store: EventStore, url: str, target: Target
) -> None:
    total = 6000
    append_events(store, total)
    process = start_relay(url, target)
    try:
        wait_stored(target, 1, process)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=WAIT)
    finally:
        process.kill()
    before = stored(target)
    assert 0 < before < total, "the relay was not killed midway"
    time.sleep(SHORT_DUPLICATE_WINDOW * 2)  # the stream has forgotten every message id
    relay_once(url, target)
    assert_the_log_once_in_order(store, target)


@pytest.mark.slow
def test_two_relays_at_once_store_each_event_once_in_order(
    store: EventStore, url: str, target: Target
) -> None:
    append_events(store, 3000)
    first, second = start_relay(url, target, "--once"), start_relay(url, target, "--once")
    for process in (first, second):
        try:
            _out, err = process.communicate(timeout=WAIT)
        finally:
            process.kill()
        assert process.returncode == 0, err
        assert "Traceback" not in err
    assert_the_log_once_in_order(store, target)


# -- following ------------------------------------------------------------------------------


def test_following_publishes_new_commits_and_sigterm_stops_it(
    store: EventStore, url: str, target: Target
) -> None:
    append_events(store, 3)
    process = start_relay(url, target)
    try:
        wait_stored(target, 3, process)
        append_events(store, 4)
        wait_stored(target, 7, process)
    finally:
        code, err = stop(process, signal.SIGTERM)
    assert code == 0, err
    assert "Traceback" not in err
    assert "relayed up to position 7" in err
    assert_the_log_once_in_order(store, target)


# -- failures -------------------------------------------------------------------------------


def test_unreachable_nats_is_retried_one_line_per_attempt(url: str, store: EventStore) -> None:
    append_events(store, 1)
    # Bound but not listening: connecting is refused, and no other process can take the port.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        process = subprocess.Popen(
            [*CLI, "--db", url, "relay", "--to", f"nats://127.0.0.1:{port}", "--once"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={k: v for k, v in os.environ.items() if not k.startswith("TOKENLEDGER_")},
        )
        lines: queue.Queue[str] = queue.Queue()
        assert process.stderr is not None
        reader = threading.Thread(target=lambda: [lines.put(x) for x in process.stderr or ()])
        reader.start()
        try:
            said = [lines.get(timeout=WAIT) for _ in range(3)]
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=WAIT)
            process.kill()
            reader.join(WAIT)
            process.stderr.close()
    assert process.returncode == 0
    where = f"nats://127.0.0.1:{port}"
    assert said == [
        f"tokenledger: relay: cannot relay to {where}: connection refused; retrying in 0.1 s\n",
        f"tokenledger: relay: cannot relay to {where}: connection refused; retrying in 0.2 s\n",
        f"tokenledger: relay: cannot relay to {where}: connection refused; retrying in 0.4 s\n",
    ]
    rest = []
    while not lines.empty():
        rest.append(lines.get())
    assert all(line.startswith("tokenledger: relay: cannot relay to") for line in rest), rest


@pytest.mark.parametrize(
    "to",
    [
        "http://127.0.0.1:4222",
        "127.0.0.1:4222",
        "nats://",
        "nats://host:99999",
        "nats://h/x",
        "nats://[::1",
        "nats://[zz]:4222",
    ],
)
def test_a_url_that_is_no_nats_server_is_one_line(to: str, tmp_path: Any) -> None:
    database = f"sqlite:///{tmp_path / 'ledger.db'}"
    result = CliRunner().invoke(cli, ["--db", database, "relay", "--to", to, "--once"])
    assert_one_line_error(result, 2, "--to")


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--stream", "a.b"),
        ("--stream", ""),
        ("--subject", "a.*"),
        ("--subject", "a..b"),
        ("--subject", "a" * 2000),
    ],
)
def test_a_bad_stream_or_subject_is_one_line(option: str, value: str, tmp_path: Any) -> None:
    database = f"sqlite:///{tmp_path / 'ledger.db'}"
    args = ["--db", database, "relay", "--to", NATS_URL, option, value, "--once"]
    assert_one_line_error(CliRunner().invoke(cli, args), 2, option)


def test_a_stream_relaying_another_ledger_is_refused(
    store: EventStore, url: str, target: Target, tmp_path: Any
) -> None:
    append_events(store, 5)
    relay_once(url, target)
    other = f"sqlite:///{tmp_path / 'other.db'}"
    from tokenledger.store import open_event_store

    other_store = open_event_store(other, auto_upgrade=True)
    try:
        append_events(other_store, 8)  # longer: position 5 exists there, with another event
    finally:
        other_store.engine.dispose()
    assert_refused(run_relay(other, *target.args("--once")), 5, "another ledger")
    assert stored(target) == 5


def test_a_stream_without_the_subject_is_refused(url: str, target: Target) -> None:
    args = ["relay", "--to", NATS_URL, "--stream", target.stream, "--subject", "tltest.elsewhere"]
    assert_refused(run_relay(url, *args, "--once"), 5, "does not store the subject")


async def _publish_foreign(target: Target) -> None:
    client = await _connect()
    try:
        await client.jetstream().publish(target.subject, b"{}", headers={"Nats-Msg-Id": "x"})
    finally:
        await client.close()


def test_a_subject_holding_messages_of_something_else_is_refused(
    store: EventStore, url: str, target: Target
) -> None:
    append_events(store, 2)
    run_nats(_publish_foreign(target))
    assert_refused(run_relay(url, *target.args("--once")), 5, "Tl-Position")
    assert stored(target) == 1


# -- NATS going away and coming back ----------------------------------------------------------


class Gate:
    """A TCP forwarder to the NATS server, which the test opens and whose connections it cuts.

    Until ``open`` its port is bound but not listening: connecting is refused.
    """

    def __init__(self) -> None:
        host, _, port = NATS_URL.removeprefix("nats://").partition(":")
        self._upstream = (host, int(port or 4222))
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self.url = f"nats://127.0.0.1:{self._listener.getsockname()[1]}"
        self._links: list[socket.socket] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def open(self) -> None:
        self._listener.listen()
        self._start(self._accept)

    def cut(self) -> None:
        """Drop every connection through the gate (it goes on accepting new ones)."""
        with self._lock:
            links, self._links = self._links, []
        for link in links:
            with contextlib.suppress(OSError):
                link.shutdown(socket.SHUT_RDWR)
            link.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # ends a blocked accept on Linux
        self._listener.close()
        self.cut()
        for thread in self._threads:
            thread.join(WAIT)

    def _start(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._upstream, timeout=WAIT)
            upstream.settimeout(None)
            with self._lock:
                self._links += [client, upstream]
            self._start(_pump, client, upstream)
            self._start(_pump, upstream, client)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    for end in (source, sink):
        with contextlib.suppress(OSError):
            end.shutdown(socket.SHUT_RDWR)


def test_nats_down_then_back_and_a_dropped_connection_lose_and_repeat_nothing(
    store: EventStore, url: str, target: Target
) -> None:
    append_events(store, 20)
    gate = Gate()
    process = subprocess.Popen(
        [*CLI, "--db", url, *target.args(to=gate.url)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("TOKENLEDGER_")},
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(x) for x in process.stderr or ()])
    reader.start()

    def next_line() -> str:
        return lines.get(timeout=WAIT)

    try:
        assert "connection refused" in next_line()  # down at the start
        gate.open()
        while "relayed up to position 20" not in (line := next_line()):
            assert "cannot relay" in line, line
        gate.cut()  # while the log is quiet: noticed without anything to send
        assert "the connection closed" in next_line()
        append_events(store, 15)
        # Back, it may say it is caught up at 20 before the new events reach it.
        while "relayed up to position 35" not in (line := next_line()):
            assert "relayed up to position 20" in line, line
        process.send_signal(signal.SIGTERM)
        code = process.wait(WAIT)
    finally:
        process.kill()
        process.wait(WAIT)
        reader.join(WAIT)
        assert process.stderr is not None
        process.stderr.close()
        gate.close()
    assert code == 0
    assert_the_log_once_in_order(store, target)
