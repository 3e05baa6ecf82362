"""Verifying the event record: every link, every checkpoint, every genealogy edge.

One pass over the events in sequence order, in pages by primary key. For each event it
checks, against the *stored* hash of the event before it (so that one altered event is named
once, not with every event after it):

* the sequence has no gap (a deleted event is named by its missing number);
* ``SHA-256(previous hash || canonical(row))`` equals the stored hash (an edited field, or an
  event moved to another place, whose sequence number is part of what is hashed);
* under a checkpoint, the hash's first bytes equal the signed fingerprint (this names the first
  altered event even after an attacker recomputed the whole chain).

Each checkpoint's signature must hold with the site's public key, over a Merkle root that must
equal the root of the stored hashes, and checkpoints must tile the sequence without gaps. The
genealogy edge table must equal the edges the events' payloads declare.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import orjson
from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection

from shopfloor.apps.mes.chain import (
    FINGERPRINT_BYTES,
    GENESIS,
    SiteKey,
    canonical_event,
    checkpoint_message,
    link,
    merkle_root,
)

PAGE = 20_000
MAX_FINDINGS = 100


@dataclass(frozen=True)
class Finding:
    seq: int | None  # the event concerned (None: not one event)
    what: str  # missing | altered | checkpoint | signature | edge | unsealed
    message: str


@dataclass
class VerifyReport:
    events: int = 0
    checkpoints: int = 0
    edges: int = 0
    findings: list[Finding] = field(default_factory=list)
    more_findings: int = 0

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def first(self) -> Finding | None:
        """The finding with the lowest event number (the first altered event)."""
        with_seq = [f for f in self.findings if f.seq is not None]
        if with_seq:
            return min(with_seq, key=lambda f: f.seq or 0)
        return self.findings[0] if self.findings else None

    def add(self, finding: Finding) -> None:
        if len(self.findings) < MAX_FINDINGS:
            self.findings.append(finding)
        else:
            self.more_findings += 1

    def as_dict(self) -> dict[str, object]:
        first = self.first
        return {
            "ok": self.ok, "events": self.events, "checkpoints": self.checkpoints, "edges": self.edges,
            "first_altered_seq": first.seq if first else None, "first": first.message if first else None,
            "findings": [{"seq": f.seq, "what": f.what, "message": f.message} for f in self.findings],
            "more_findings": self.more_findings,
        }


@dataclass
class _Block:
    first_seq: int
    last_seq: int
    root: bytes
    head: bytes
    signed_ns: int
    key_id: str
    signature: bytes
    fps: bytes
    hashes: list[bytes] = field(default_factory=list)


def verify(engine: Engine, key: SiteKey, progress: Callable[[int, int], None] | None = None) -> VerifyReport:
    """Check the whole record; progress(done, total) is called after each page of events."""
    report = VerifyReport()
    with engine.connect() as conn:
        total = int(conn.execute(text("SELECT count(*) FROM mes_event")).scalar_one())
        blocks = [
            _Block(int(r[0]), int(r[1]), bytes(r[2]), bytes(r[3]), int(r[4]), str(r[5]), bytes(r[6]), bytes(r[7]))
            for r in conn.execute(text(
                "SELECT first_seq, last_seq, merkle_root, head_hash, signed_ns, key_id, signature, fingerprints "
                "FROM mes_checkpoint ORDER BY first_seq"
            ))
        ]
        report.checkpoints = len(blocks)
        _check_tiling(blocks, report)
        block_at = 0
        expected_seq, prev = 1, GENESIS
        edge_out, edge_in, edge_seq = array("q"), array("q"), array("q")
        last = 0
        while True:
            rows = conn.execute(
                text(
                    "SELECT seq, ts_ns, kind, item_id, equipment_id, operator, work_order_id, operation_id, payload, "
                    "hash FROM mes_event WHERE seq > :last ORDER BY seq LIMIT :n"
                ),
                {"last": last, "n": PAGE},
            ).all()
            if not rows:
                break
            for seq, ts_ns, kind, item_id, equipment_id, operator, work_order_id, operation_id, payload, h in rows:
                stored = bytes(h)
                if seq != expected_seq:
                    missing = f"{expected_seq}" if seq == expected_seq + 1 else f"{expected_seq}..{seq - 1}"
                    report.add(Finding(expected_seq, "missing", f"event {missing} is missing (deleted)"))
                recomputed = link(prev, canonical_event(
                    seq, ts_ns, kind, item_id, equipment_id, operator, work_order_id, operation_id, payload
                ))
                if recomputed != stored:
                    report.add(Finding(seq, "altered", f"event {seq} was altered or moved: its hash does not match"))
                while block_at < len(blocks) and blocks[block_at].last_seq < seq:
                    _check_block(blocks[block_at], key, report)  # done with it: check, then free its hashes
                    block_at += 1
                if block_at < len(blocks) and blocks[block_at].first_seq <= seq:
                    block = blocks[block_at]
                    i = seq - block.first_seq
                    signed_fp = block.fps[i * FINGERPRINT_BYTES : (i + 1) * FINGERPRINT_BYTES]
                    if stored[:FINGERPRINT_BYTES] != signed_fp and recomputed == stored:
                        report.add(Finding(
                            seq, "altered",
                            f"event {seq} differs from what checkpoint {block.first_seq}..{block.last_seq} signed "
                            "(its hash was recomputed after a change)",
                        ))
                    block.hashes.append(stored)
                if kind in ("produced", "packed") and item_id is not None:
                    for input_id, _qty in orjson.loads(payload).get("inputs", ()):
                        edge_out.append(int(item_id))
                        edge_in.append(int(input_id))
                        edge_seq.append(int(seq))
                prev, expected_seq, last = stored, seq + 1, seq
                report.events += 1
            if progress is not None:
                progress(report.events, total)
        if blocks and blocks[-1].last_seq >= expected_seq:
            report.add(Finding(expected_seq, "missing", f"events {expected_seq}..{blocks[-1].last_seq} are missing "
                                                        "(deleted): a checkpoint signed them"))
        for block in blocks[block_at:]:
            _check_block(block, key, report)
        _check_edges(conn, edge_out, edge_in, edge_seq, report)
    return report


def _check_tiling(blocks: list[_Block], report: VerifyReport) -> None:
    expected = 1
    for b in blocks:
        if b.first_seq != expected:
            report.add(Finding(expected, "checkpoint", f"no checkpoint covers events {expected}..{b.first_seq - 1}"))
        expected = b.last_seq + 1


def _check_block(block: _Block, key: SiteKey, report: VerifyReport) -> None:
    span = f"{block.first_seq}..{block.last_seq}"
    if block.key_id != key.key_id:
        report.add(Finding(block.first_seq, "signature", f"checkpoint {span} was signed by key {block.key_id}, "
                                                          f"not by this site's key {key.key_id}"))
        return
    message = checkpoint_message(block.first_seq, block.last_seq, block.root, block.head, block.signed_ns, block.fps)
    if not key.verify(block.signature, message):
        report.add(Finding(block.first_seq, "signature", f"checkpoint {span}: the signature does not hold"))
        return
    n = block.last_seq - block.first_seq + 1
    hashes, block.hashes = block.hashes, []
    if len(hashes) != n:
        report.add(Finding(None, "checkpoint", f"checkpoint {span} signed {n} events, {len(hashes)} are left"))
    elif merkle_root(hashes) != block.root:
        report.add(Finding(None, "checkpoint", f"checkpoint {span}: the Merkle root of the stored events differs"))
    if len(hashes) == n and hashes[-1] != block.head:
        report.add(Finding(block.last_seq, "checkpoint", f"checkpoint {span}: the chain head differs"))


def _check_edges(conn: Connection, out: array[int], inp: array[int], seq: array[int], report: VerifyReport) -> None:
    want = np.stack([np.frombuffer(out, np.int64), np.frombuffer(inp, np.int64), np.frombuffer(seq, np.int64)], 1)
    cursor = conn.connection.cursor()  # millions of rows: straight into arrays, page by page
    cursor.execute("SELECT output_id, input_id, event_seq FROM mes_genealogy_edge")
    pages = []
    while rows := cursor.fetchmany(100_000):
        pages.append(np.array(rows, dtype=np.int64).reshape(-1, 3))
    cursor.close()
    have = np.concatenate(pages) if pages else np.empty((0, 3), np.int64)
    report.edges = len(have)
    want = want[np.lexsort((want[:, 1], want[:, 0]))]
    have = have[np.lexsort((have[:, 1], have[:, 0]))]
    if len(want) == len(have) and np.array_equal(want, have):
        return
    n = min(len(want), len(have))
    diff = np.flatnonzero((want[:n] != have[:n]).any(axis=1))
    i = int(diff[0]) if len(diff) else n
    row = want[i] if i < len(want) else have[i]
    report.add(Finding(
        int(row[2]), "edge",
        f"genealogy edge {int(row[1])} -> {int(row[0])} does not match event {int(row[2])}: "
        f"{len(want)} edges declared by events, {len(have)} stored",
    ))
