"""The embedded amqtt broker's side of MQTT access control: the same rules Mosquitto gets (acl.py).

amqtt asks every auth plugin at CONNECT and every topic plugin before it accepts
a PUBLISH, accepts a SUBSCRIBE and delivers a message (actions publish, subscribe,
receive); all must say yes. Both plugins read one ``BrokerAccess`` handed over in
their ``Config`` (amqtt fills a plugin's ``Config`` dataclass from the broker
configuration). Hash checks (PBKDF2, argon2) run on a worker thread, not the
broker's loop.

amqtt speaks MQTT 3.1.1: a refused PUBLISH is acknowledged and dropped (3.1.1 has no
reason codes for it), a refused SUBSCRIBE gets the 0x80 failure code, and a refused
CONNECT the "not authorised" return code.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin

from shopfloor.connectors.mqtt.acl import BrokerAccess

AUTH_PLUGIN = f"{__name__}.AccessAuthPlugin"
TOPIC_PLUGIN = f"{__name__}.AccessTopicPlugin"


def plugins_config(access: BrokerAccess) -> dict[str, dict[str, Any]]:
    """The ``plugins`` section of an amqtt broker configuration that enforces ``access``."""
    return {AUTH_PLUGIN: {"access": access}, TOPIC_PLUGIN: {"access": access}}


def _access(plugin: Any) -> BrokerAccess:
    access = plugin.config.access
    if not isinstance(access, BrokerAccess):
        raise TypeError(f"{type(plugin).__name__} needs 'access': a BrokerAccess")
    return access


class AccessAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]  # amqtt ships no type information
    """Username and password against the access's hashes; anonymous and unknown users are refused."""

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self.access = _access(self)

    async def authenticate(self, *, session: Any) -> bool:
        username, password = session.username, session.password
        if isinstance(password, bytes):
            password = password.decode("utf-8", "replace")
        ok = await asyncio.to_thread(self.access.authenticate, username, password)
        if not ok:
            self.access.refused["connect"] += 1
            self.context.logger.info("MQTT connect refused for user %r", username)
        return ok

    @dataclass
    class Config:
        access: Any = None


class AccessTopicPlugin(BaseTopicPlugin):  # type: ignore[misc]
    """Publish, subscribe and delivery checked against the user's filters."""

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self.access = _access(self)

    async def topic_filtering(self, *, session: Any = None, topic: str | None = None, action: Any = None) -> bool:
        if session is None or not topic:
            return False
        user = session.username
        if action == Action.PUBLISH:
            allowed = self.access.may_publish(user, topic)
        elif action == Action.SUBSCRIBE:
            allowed = self.access.may_subscribe(user, topic)
        elif action == Action.RECEIVE:
            allowed = self.access.may_receive(user, topic)
        else:
            allowed = False
        if not allowed and action != Action.RECEIVE:  # a message not delivered is no fault of the receiver
            what = "publish" if action == Action.PUBLISH else "subscribe"
            self.access.refused[what] += 1
            self.context.logger.info("MQTT %s of %r refused for user %r", what, topic, user)
        return allowed

    @dataclass
    class Config:
        access: Any = None
