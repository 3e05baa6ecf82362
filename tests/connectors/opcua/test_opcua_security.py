"""Basic256Sha256 SignAndEncrypt with certificates made in the test, plus a username login."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.crypto import cert_gen
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.server import Server
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from opcua_testkit import Sink, free_port, node_id, running, start_server, wait_for

from shopfloor.config.schema import OpcUaSource
from shopfloor.connectors.opcua import OpcUaConnector, browse


def make_cert(tmp_path: Path, name: str, uri: str, usage: x509.ObjectIdentifier) -> tuple[str, str]:
    key = cert_gen.generate_private_key()
    cert = cert_gen.generate_self_signed_app_certificate(
        key, name, {}, [x509.UniformResourceIdentifier(uri), x509.DNSName(socket.gethostname())], [usage], days=2)
    cert_path, key_path = tmp_path / f"{name}.pem", tmp_path / f"{name}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(cert_gen.dump_private_key_as_pem(key))
    return str(cert_path), str(key_path)


class OneUser:
    """Accepts only operator/secret."""

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> User | None:
        return User(role=UserRole.User) if (username, password) == ("operator", "secret") else None


async def test_sign_and_encrypt_with_user_login(tmp_path: Path, sink: Sink) -> None:
    server_cert, server_key = make_cert(tmp_path, "server", "urn:freeopcua:python:server",
                                        ExtendedKeyUsageOID.SERVER_AUTH)
    client_cert, client_key = make_cert(tmp_path, "client", "urn:shopfloor:test-client",
                                        ExtendedKeyUsageOID.CLIENT_AUTH)

    async def secure(server: Server) -> None:
        await server.load_certificate(server_cert)
        await server.load_private_key(server_key)
        server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
        server.set_identity_tokens([ua.UserNameIdentityToken])

    endpoint = f"opc.tcp://127.0.0.1:{free_port()}/shopfloor/"
    server = await start_server(endpoint, secure, user_manager=OneUser())
    settings: dict[str, object] = {
        "protocol": "opcua", "endpoint": endpoint, "security_policy": "Basic256Sha256",
        "security_mode": "SignAndEncrypt", "certificate": client_cert, "private_key": client_key,
        "server_certificate": server_cert, "username": "operator", "password": "secret",
        "publishing_interval_ms": 20, "sampling_interval_ms": 10,
    }
    try:
        await server.set("Double", 8.5)
        conn = OpcUaConnector("secure", OpcUaSource.model_validate(settings), [(1, node_id("Double"), None)],
                              flush_interval=0.05, watchdog_interval=0.5)
        async with running(conn, sink):
            await wait_for(lambda: sink.has(1, 8.5), what="a value over the encrypted channel")
            assert conn.health()["security_policy"] == "Basic256Sha256"
            await conn.write(node_id("Double"), 9.5)
            assert await server.nodes["Double"].read_value() == 9.5

        nodes = await browse(OpcUaSource.model_validate(settings), root="ns=2;s=Machine", depth=1)
        assert "2:Double" in {n.browse_path for n in nodes}

        wrong = OpcUaConnector("intruder", OpcUaSource.model_validate({**settings, "password": "guess"}),
                               [(1, node_id("Double"), None)], backoff_initial=0.1, backoff_max=0.2)
        refused = Sink()
        async with running(wrong, refused):
            await wait_for(lambda: wrong.health()["last_error"] is not None, what="the refused login")
            assert wrong.health()["connected"] is False
            assert wrong.health()["last_error"] == "connect: BadUserAccessDenied"
        assert refused.batches == []
    finally:
        await server.server.stop()

