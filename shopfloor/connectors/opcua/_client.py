"""Typed helpers around asyncua's client: connecting with the source's security, errors, timestamps.

asyncua is only partly typed, so the connector and the browser go through these
few functions, and the rest of shopfloor sees plain Python types.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from asyncua import ua
from asyncua.client.client import Client
from asyncua.crypto import security_policies, uacrypto
from asyncua.ua.status_codes import get_name_and_doc
from asyncua.ua.uaerrors import UaStatusCodeError
from cryptography import x509

from shopfloor.config.schema import OpcUaSource
from shopfloor.core.errors import NotReady, ShopfloorError

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class OpcUaError(ShopfloorError):
    """An OPC UA request failed; ``status`` is the status code name when the server answered Bad."""

    def __init__(self, message: str, status: str | None = None, code: int | None = None) -> None:
        super().__init__(message if status is None else f"{message}: {status}")
        self.status = status
        self.code = code


def status_name(code: int) -> str:
    """BadNodeIdUnknown rather than 0x80340000, for logs and health."""
    try:
        return str(get_name_and_doc(code & 0xFFFF0000)[0])
    except Exception:  # unknown codes: the server may use vendor ones
        return f"0x{code:08X}"


def check_status(code: ua.StatusCode | int | None, what: str) -> None:
    """Raise OpcUaError carrying the status name when ``code`` is not Good."""
    value = 0 if code is None else (code if isinstance(code, int) else int(code.value))
    if (value >> 30) & 0b11:  # uncertain and bad both refuse a write or call
        raise OpcUaError(what, status_name(value), value)


def translate_error(exc: Exception, what: str) -> Exception:
    """asyncua's exceptions as shopfloor's: a Bad status → OpcUaError, a dead link → NotReady."""
    if isinstance(exc, UaStatusCodeError):
        code = int(exc.code)
        return OpcUaError(what, status_name(code), code)
    if isinstance(exc, ConnectionError | OSError | TimeoutError):
        return NotReady(f"{what}: {exc!r}")
    return exc


def describe(exc: BaseException) -> str:
    """Short text for health's last_error: the status name for a Bad status, else the repr."""
    if isinstance(exc, UaStatusCodeError):
        return status_name(int(exc.code))
    return repr(exc)


def datetime_to_ns(dt: datetime) -> int:
    """Exact int64 nanoseconds from a datetime (naive ones are UTC, as asyncua decodes them)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def parse_node_id(text: str) -> ua.NodeId:
    """Parse "ns=2;s=Spindle.Speed"; a malformed id raises ValueError with the reason."""
    try:
        node_id = ua.NodeId.from_string(text)
    except Exception as exc:
        raise ValueError(f"invalid node id {text!r}: {exc}") from exc
    if not isinstance(node_id, ua.NodeId):  # pragma: no cover - asyncua always returns one
        raise ValueError(f"invalid node id {text!r}")
    return node_id


async def _application_uri(path: str) -> str | None:
    """The URI in the client certificate, which asyncua must announce as its application URI."""
    cert = await uacrypto.load_certificate(path)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    return str(uris[0]) if uris else None


async def make_client(source: OpcUaSource, *, timeout: float, watchdog_interval: float) -> Client:
    """A configured, not yet connected client: security policy and mode, certificates, user login.

    asyncua's own reconnect stays off: the connector supervises the link itself,
    so that it can mark samples BAD and log exactly once per outage.
    """
    client = Client(source.endpoint, timeout=timeout, watchdog_intervall=watchdog_interval, auto_reconnect=False)
    client.session_timeout = 60_000
    if source.security_policy == "Basic256Sha256":
        assert source.certificate is not None and source.private_key is not None  # the schema checks this
        uri = await _application_uri(source.certificate)
        if uri is not None:
            client.application_uri = uri
        await client.set_security(
            security_policies.SecurityPolicyBasic256Sha256,
            certificate=source.certificate,
            private_key=source.private_key,
            server_certificate=source.server_certificate,
            mode=getattr(ua.MessageSecurityMode, source.security_mode),
        )
    if source.username is not None:
        client.set_user(source.username)
    if source.password is not None:
        client.set_password(source.password)
    return client


async def close_client(client: Client, timeout: float) -> None:
    """Disconnect, bounded in time; a cancel that asyncua's teardown swallows is raised again."""
    try:
        await asyncio.wait_for(client.disconnect(), timeout)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.debug("disconnect from %s failed: %r", client.server_url.geturl(), exc)
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
