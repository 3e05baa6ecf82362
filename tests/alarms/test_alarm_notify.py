"""Notifications against real servers: a local HTTP server for webhooks, aiosmtpd for e-mail."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from shopfloor.alarms.config import NotifyConfig
from shopfloor.alarms.notify import Notifier
from shopfloor.core.net import free_port
from shopfloor.testing.waiting import wait_for

PRESS = "plant/a/l/press"
Make = Callable[[str], Any]


class WebhookServer:
    """Records JSON bodies POSTed to it; answers with the next status in `statuses` (then 200)."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.statuses: list[int] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = outer.statuses.pop(0) if outer.statuses else 200
                if status == 200:
                    outer.bodies.append(json.loads(body))
                    outer.headers.append(dict(self.headers))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def events(self) -> list[dict[str, Any]]:
        return [e for b in self.bodies for e in b["events"]]


@pytest.fixture
def webhook() -> Iterator[WebhookServer]:
    server = WebhookServer()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


def event(alarm_id: str, priority: str = "high", what: str = "activated") -> dict[str, Any]:
    return {"alarm_id": alarm_id, "event": what, "priority": priority, "to_state": "unack_active", "value": 1.5,
            "time": "2026-11-22T10:00:00Z", "message": "too much force"}


def test_webhook_rate_limit_batches_instead_of_dropping(webhook: WebhookServer) -> None:
    config = NotifyConfig.model_validate({"targets": [
        {"name": "ops", "webhook": {"url": webhook.url, "headers": {"X-Key": "k1"}}, "min_interval_s": 0.5},
        {"name": "crit-only", "webhook": {"url": webhook.url}, "min_priority": "critical"},
    ]})
    n = Notifier(config)
    n.start()
    try:
        n.activated(event("a:H"))
        wait_for(lambda: len(webhook.bodies) == 1, 5)
        for i in range(5):  # a flood inside the interval: one more message with all five
            n.activated(event(f"b{i}:H"))
        wait_for(lambda: len(webhook.bodies) == 2, 5)
        time.sleep(0.2)
        assert [len(b["events"]) for b in webhook.bodies] == [1, 5]
        assert all(b["target"] == "ops" for b in webhook.bodies)  # the high alarms are below crit-only's bar
        assert webhook.headers[0]["X-Key"] == "k1"
        n.activated(event("c:HH", "critical"))
        wait_for(lambda: {b["target"] for b in webhook.bodies} == {"ops", "crit-only"}, 5)
    finally:
        n.stop()
    health = {h["target"]: h for h in n.health()}
    assert health["ops"]["sent_events"] == 7 and health["ops"]["pending"] == 0


def test_webhook_failure_is_retried(webhook: WebhookServer) -> None:
    webhook.statuses = [500, 503]
    config = NotifyConfig.model_validate({"targets": [{"name": "ops", "webhook": {"url": webhook.url},
                                                       "min_interval_s": 0}]})
    n = Notifier(config, retry_s=0.05)
    n.start()
    try:
        n.activated(event("a:H"))
        wait_for(lambda: len(webhook.bodies) == 1, 5)
    finally:
        n.stop()
    h = n.health()[0]
    assert (h["failed"], h["sent_events"], h["dropped_events"]) == (2, 1, 0)
    assert "503" in h["last_error"]


def test_email_through_a_real_smtp_server(smtp: tuple[Mailbox, int]) -> None:
    box, port = smtp
    config = NotifyConfig.model_validate({
        "smtp": {"host": "127.0.0.1", "port": port, "sender": "alarms@plant.example"},
        "targets": [{"name": "shift", "email": {"to": ["lead@plant.example"]}, "min_interval_s": 0}],
    })
    n = Notifier(config)
    n.start()
    try:
        n.activated(event("force:HH", "critical"))
        wait_for(lambda: len(box.messages) == 1, 5)
    finally:
        n.stop()
    rcpt, msg = box.messages[0]
    assert rcpt == ["lead@plant.example"]
    assert msg["Subject"] == "[shopfloor] CRITICAL force:HH activated"
    assert "force:HH" in msg.get_payload() and "too much force" in msg.get_payload()


def test_escalation_when_unacknowledged(harness: Make, webhook: WebhookServer, smtp: tuple[Mailbox, int]) -> None:
    box, port = smtp
    h = harness(f"""\
alarms:
  rules:
    - {{name: force, type: limit, tag: {PRESS}/force, h: 100, priority: high}}
  notify:
    smtp: {{host: 127.0.0.1, port: {port}}}
    targets:
      - {{name: ops, webhook: {{url: "{webhook.url}"}}, min_interval_s: 0}}
      - {{name: lead, email: {{to: [lead@plant.example]}}, escalation_only: true, min_interval_s: 0}}
    escalation:
      - {{after_min: 5, targets: [ops]}}
      - {{after_min: 15, targets: [lead]}}
""")
    tag = f"{PRESS}/force"
    h.feed(tag, [(0, 120)])
    wait_for(lambda: [e["event"] for e in webhook.events()] == ["activated"], 5)
    h.feed(tag, [(299, 121)])
    h.engine.tick()
    h.feed(tag, [(301, 122)])  # five minutes of sample time unacknowledged: re-notify ops
    h.engine.tick()
    wait_for(lambda: [e["event"] for e in webhook.events()] == ["activated", "escalated"], 5)
    assert box.messages == []
    h.feed(tag, [(901, 122)])  # fifteen: the shift lead gets an e-mail
    h.engine.tick()
    wait_for(lambda: len(box.messages) == 1, 5)
    assert "escalated" in box.messages[0][1]["Subject"]
    h.engine.acknowledge("force:H", "ann")
    h.feed(tag, [(2000, 122)])
    h.engine.tick()
    time.sleep(0.2)
    assert len(webhook.events()) == 2 and len(box.messages) == 1  # acknowledged: no more escalation
    assert [r.event for r in h.engine.store.journal(alarm_id="force:H")].count("escalated") == 2
