"""Alarm notifications: webhooks (httpx) and e-mail (smtplib), rate limited, on a thread of their own.

The engine hands events over and never waits on a network. Rate limiting never
loses an event: each target sends at most one message per ``min_interval_s``,
and what arrives in between goes out together in the next message (a flood
becomes a digest, not a silence). A failed send is retried with backoff; after
``max_attempts`` the events are dropped and counted.
"""

from __future__ import annotations

import logging
import smtplib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import httpx

from shopfloor.alarms.config import PRIORITY_RANK, NotifyConfig, NotifyTarget, SmtpConfig

log = logging.getLogger(__name__)

MAX_EVENTS_PER_MESSAGE = 200
Sender = Callable[[NotifyTarget, list[dict[str, Any]]], None]


@dataclass
class _Queue:
    target: NotifyTarget
    pending: list[dict[str, Any]] = field(default_factory=list)
    next_send: float = 0.0
    attempts: int = 0
    sent_messages: int = 0
    sent_events: int = 0
    failed: int = 0
    dropped_events: int = 0
    last_error: str | None = None


class Notifier:
    """Routes alarm events to targets and sends them from a background thread."""

    def __init__(self, config: NotifyConfig, *, max_attempts: int = 5, retry_s: float = 2.0) -> None:
        self.config = config
        self.max_attempts = max_attempts
        self.retry_s = retry_s
        self._queues = {t.name: _Queue(t) for t in config.targets}
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._http = httpx.Client()

    def start(self) -> None:
        if self._queues:
            self._thread = threading.Thread(target=self._run, name="alarm-notify", daemon=True)
            self._thread.start()

    def stop(self, flush_timeout: float = 5.0) -> None:
        """Send what is pending (within flush_timeout), then stop."""
        deadline = time.monotonic() + flush_timeout
        with self._cond:
            while self._thread is not None and any(q.pending for q in self._queues.values()):
                if time.monotonic() > deadline:
                    break
                for q in self._queues.values():
                    q.next_send = 0.0
                self._cond.notify_all()
                self._cond.wait(0.05)
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(10)
        self._http.close()

    # --- routing -------------------------------------------------------------------------------------------------

    def activated(self, event: dict[str, Any]) -> None:
        """A newly annunciated alarm: to every target that takes its priority."""
        rank = PRIORITY_RANK[str(event["priority"])]
        names = [
            q.target.name for q in self._queues.values()
            if not q.target.escalation_only and rank >= PRIORITY_RANK[q.target.min_priority]
        ]
        self._enqueue(names, event)

    def escalated(self, event: dict[str, Any], targets: list[str]) -> None:
        self._enqueue(targets, event)

    def _enqueue(self, names: list[str], event: dict[str, Any]) -> None:
        if not names:
            return
        with self._cond:
            for name in names:
                q = self._queues[name]
                if len(q.pending) >= 10 * MAX_EVENTS_PER_MESSAGE:
                    q.dropped_events += 1  # a target that has been down for long: keep memory bounded
                    continue
                q.pending.append(event)
            self._cond.notify_all()

    def health(self) -> list[dict[str, Any]]:
        with self._cond:
            return [
                {"target": n, "kind": "webhook" if q.target.webhook else "email", "pending": len(q.pending),
                 "sent_messages": q.sent_messages, "sent_events": q.sent_events, "failed": q.failed,
                 "dropped_events": q.dropped_events, "last_error": q.last_error}
                for n, q in self._queues.items()
            ]

    # --- sending -------------------------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._stop:
                    return
                now = time.monotonic()
                ready = [q for q in self._queues.values() if q.pending and q.next_send <= now]
                if not ready:
                    waits = [q.next_send - now for q in self._queues.values() if q.pending]
                    self._cond.wait(max(0.01, min(waits)) if waits else None)
                    continue
                work = [(q, q.pending[:MAX_EVENTS_PER_MESSAGE]) for q in ready]
            for q, events in work:
                self._send_one(q, events)

    def _send_one(self, q: _Queue, events: list[dict[str, Any]]) -> None:
        error: str | None = None
        try:
            self.send(q.target, events)
        except Exception as exc:  # network, HTTP status, SMTP: counted and retried, never fatal
            error = f"{type(exc).__name__}: {exc}"
        with self._cond:
            if error is None:
                del q.pending[: len(events)]
                q.sent_messages += 1
                q.sent_events += len(events)
                q.attempts = 0
                q.next_send = time.monotonic() + q.target.min_interval_s
            else:
                q.failed += 1
                q.attempts += 1
                q.last_error = error
                if q.attempts >= self.max_attempts:
                    log.error("notify %s: giving up on %d events after %d attempts: %s", q.target.name,
                              len(events), q.attempts, error)
                    del q.pending[: len(events)]
                    q.dropped_events += len(events)
                    q.attempts = 0
                else:
                    log.warning("notify %s failed (attempt %d): %s", q.target.name, q.attempts, error)
                q.next_send = time.monotonic() + max(q.target.min_interval_s, self.retry_s * 2 ** (q.attempts - 1))
            self._cond.notify_all()

    def send(self, target: NotifyTarget, events: list[dict[str, Any]]) -> None:
        """One message with these events (raises on failure)."""
        if target.webhook is not None:
            w = target.webhook
            body = {"source": "shopfloor", "target": target.name, "events": events}
            response = self._http.post(w.url, json=body, headers=w.headers, timeout=w.timeout_s)
            response.raise_for_status()
        elif target.email is not None:
            assert self.config.smtp is not None  # the config guarantees it
            send_mail(self.config.smtp, target.email.to, subject(target.email.subject_prefix, events), text(events))


def subject(prefix: str, events: list[dict[str, Any]]) -> str:
    first = events[0]
    more = f" (+{len(events) - 1} more)" if len(events) > 1 else ""
    return f"{prefix} {str(first['priority']).upper()} {first['alarm_id']} {first['event']}{more}"


def text(events: list[dict[str, Any]]) -> str:
    lines = []
    for e in events:
        value = "" if e.get("value") is None else f" value={e['value']}"
        lines.append(
            f"{e['time']}  {str(e['priority']).upper():8} {e['alarm_id']}  {e['event']} -> {e['to_state']}{value}"
            + (f"  {e['message']}" if e.get("message") else "")
        )
    return "\n".join(lines) + "\n"


def send_mail(smtp: SmtpConfig, to: list[str], subject_line: str, body: str) -> None:
    msg = EmailMessage()
    msg["From"] = smtp.sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject_line
    msg.set_content(body)
    cls = smtplib.SMTP_SSL if smtp.ssl else smtplib.SMTP
    with cls(smtp.host, smtp.port, timeout=smtp.timeout_s) as server:
        if smtp.starttls and not smtp.ssl:
            server.starttls()
        if smtp.username:
            server.login(smtp.username, smtp.password or "")
        server.send_message(msg)
