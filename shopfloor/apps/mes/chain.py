"""Hash chain, Merkle roots and Ed25519 signatures of the event record.

* Canonical encoding of an event: the row's fields as JSON with sorted keys, no whitespace,
  UTF-8 (orjson ``OPT_SORT_KEYS``). The payload is stored already canonical, as text, so the
  bytes hashed are exactly what the database holds.
* Chain: ``hash[i] = SHA-256(hash[i-1] || canonical(event i))``, ``hash[0]`` = 32 zero bytes.
  Changing, deleting or reordering any event breaks every later link.
* Checkpoint per block of events: a Merkle root (RFC 6962 tree: leaf ``SHA-256(0x00 || h)``,
  node ``SHA-256(0x01 || left || right)``) over the block's chain hashes, plus the chain head,
  signed with the site's Ed25519 key. A rewrite that recomputes the whole chain still fails the
  signature, which an attacker without the private key cannot produce.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

GENESIS = bytes(32)
CHECKPOINT_DOMAIN = b"shopfloor-mes-checkpoint-v1"


def canonical_payload(payload: dict[str, Any] | None) -> str:
    """Payload as canonical JSON text: sorted keys, compact, UTF-8; NaN/inf are refused."""
    return orjson.dumps(payload or {}, option=orjson.OPT_SORT_KEYS).decode()


def canonical_event(
    seq: int, ts_ns: int, kind: str, item_id: int | None, equipment_id: int | None, operator: str | None,
    work_order_id: int | None, operation_id: int | None, payload: str,
) -> bytes:
    """The bytes hashed for one event (every column but the hash itself)."""
    return orjson.dumps(
        {"e": equipment_id, "i": item_id, "k": kind, "o": operator, "op": operation_id, "p": payload,
         "s": seq, "t": ts_ns, "w": work_order_id},
        option=orjson.OPT_SORT_KEYS,
    )


def link(prev: bytes, encoded: bytes) -> bytes:
    return hashlib.sha256(prev + encoded).digest()


def merkle_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 Merkle tree hash of the leaves (an empty list hashes to SHA-256 of nothing)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    level = [hashlib.sha256(b"\x00" + leaf).digest() for leaf in leaves]
    return _root(level)


def _root(nodes: list[bytes]) -> bytes:
    # RFC 6962 splits at the largest power of two below n; building bottom-up with the odd node
    # promoted unchanged gives the same tree.
    while len(nodes) > 1:
        nxt = [hashlib.sha256(b"\x01" + nodes[i] + nodes[i + 1]).digest() for i in range(0, len(nodes) - 1, 2)]
        if len(nodes) % 2:
            nxt.append(nodes[-1])
        nodes = nxt
    return nodes[0]


FINGERPRINT_BYTES = 4


def fingerprints(hashes: list[bytes]) -> bytes:
    """The first bytes of each chain hash, concatenated: signed with the root, they locate an altered event."""
    return b"".join(h[:FINGERPRINT_BYTES] for h in hashes)


def checkpoint_message(
    first_seq: int, last_seq: int, root: bytes, head: bytes, signed_ns: int, fingerprint_bytes: bytes
) -> bytes:
    """What the site key signs: block range, time, Merkle root, chain head and a digest of the fingerprints."""
    return (
        CHECKPOINT_DOMAIN + struct.pack(">qqq", first_seq, last_seq, signed_ns) + root + head
        + hashlib.sha256(fingerprint_bytes).digest()
    )


@dataclass(frozen=True)
class SiteKey:
    """The site's Ed25519 key: the private half signs checkpoints, the public half verifies them."""

    public: Ed25519PublicKey
    private: Ed25519PrivateKey | None = None

    @property
    def key_id(self) -> str:
        raw = self.public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return hashlib.sha256(raw).hexdigest()[:16]

    def sign(self, message: bytes) -> bytes:
        if self.private is None:
            raise PermissionError("this site key holds only the public half: it can verify, not sign")
        return self.private.sign(message)

    def verify(self, signature: bytes, message: bytes) -> bool:
        try:
            self.public.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    def public_pem(self) -> bytes:
        return self.public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    @classmethod
    def generate(cls) -> SiteKey:
        private = Ed25519PrivateKey.generate()
        return cls(private.public_key(), private)

    @classmethod
    def load_or_create(cls, path: str | Path) -> SiteKey:
        """The key in a PEM file (PKCS#8), created with mode 0600 on first use; its public half beside it."""
        path = Path(path)
        if path.exists():
            private = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(private, Ed25519PrivateKey):
                raise ValueError(f"{path} holds no Ed25519 private key")
            return cls(private.public_key(), private)
        key = cls.generate()
        assert key.private is not None
        pem = key.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        path.with_suffix(".pub.pem").write_bytes(key.public_pem())
        return key

    @classmethod
    def load_public(cls, path: str | Path) -> SiteKey:
        """Only the public half (a verifier needs nothing else)."""
        data = Path(path).read_bytes()
        if b"PRIVATE KEY" in data:
            return cls.load_or_create(path)
        public = serialization.load_pem_public_key(data)
        if not isinstance(public, Ed25519PublicKey):
            raise ValueError(f"{path} holds no Ed25519 public key")
        return cls(public)
