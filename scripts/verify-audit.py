#!/usr/bin/env python3
"""Verify an Agentry audit export: an independent check of the hash chain.

Written from docs/audit-chain.md alone, with Python's standard library only, so that an auditor
can read it in a few minutes and trust it rather than the service.

    scripts/verify-audit.py EXPORT.ndjson [--checkpoint SEQ:HASH ...]
    curl -H "Authorization: Bearer $TOKEN" https://host/v1/audit/export | scripts/verify-audit.py -

Prints `OK entries=N head=SEQ:HASH` and exits 0 when the chain is intact (and holds every
checkpoint given); prints `BROKEN seq=N reason=R: ...` and exits 1 at the first broken link;
exits 2 when the input cannot be read as an export.

A checkpoint is an entry's `seq` and `hash` recorded outside the service earlier (from
`GET /v1/audit/verify` or an earlier export): the export must still hold that very entry, which a
rewrite of the log's tail cannot fake.
"""

import argparse
import hashlib
import json
import sys

GENESIS = "0" * 64
FIELDS = {
    "action", "actor", "client_ip", "event_id", "hash", "impersonator_id", "org_id",
    "prev_hash", "recorded_at", "request_id", "seq", "target_id", "target_type", "user_agent",
}
REQUIRED = FIELDS - {"client_ip", "impersonator_id", "request_id", "user_agent"}


def canonical_bytes(entry):
    """The entry without `hash` in canonical JSON: keys sorted, no whitespace, strings escaped
    only where JSON requires it (`"`, `\\`, U+0000-U+001F), everything else as UTF-8."""
    content = {key: value for key, value in entry.items() if key != "hash"}
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def leaf_hash(entry):
    """SHA-256 over a zero byte and the canonical bytes (RFC 6962's leaf hash), in hex."""
    return hashlib.sha256(b"\x00" + canonical_bytes(entry)).hexdigest()


def read_entries(lines):
    """Each line of the export as an entry (a dict), checking its shape."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        entry = json.loads(line)
        if not isinstance(entry, dict) or not REQUIRED <= entry.keys() <= FIELDS:
            raise ValueError(f"line {number} is not an audit entry: {line[:200]!r}")
        if not isinstance(entry["seq"], int) or isinstance(entry["seq"], bool):
            raise ValueError(f"line {number}: seq is not an integer")
        yield entry


def verify(entries, checkpoints):
    """Walks the chain; returns (checked, head, broken) where broken is (seq, reason) or None."""
    expected, previous, before = 1, GENESIS, None
    checked, head = 0, None
    seen = {}
    for entry in entries:
        seq = entry["seq"]
        if seq > expected:
            return checked, head, (expected, "missing")
        if seq < expected:
            return checked, head, (seq, "out_of_order")
        if entry["prev_hash"] != previous:
            if before is not None and entry["prev_hash"] == before:
                return checked, head, (seq - 1, "inserted")
            return checked, head, (seq, "prev_hash_mismatch")
        if leaf_hash(entry) != entry["hash"]:
            return checked, head, (seq, "hash_mismatch")
        if seq in checkpoints:
            seen[seq] = entry["hash"]
        checked += 1
        expected, before, previous = seq + 1, previous, entry["hash"]
        head = (seq, entry["hash"])
    for seq, expected_hash in sorted(checkpoints.items()):
        if seen.get(seq) != expected_hash:
            return checked, head, (seq, "checkpoint_mismatch")
    return checked, head, None


def parse_checkpoint(text):
    seq, _, digest = text.partition(":")
    if not seq.isdigit() or len(digest) != 64:
        raise argparse.ArgumentTypeError(f"not SEQ:HASH with a 64-digit hash: {text}")
    return int(seq), digest.lower()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("export", help="the NDJSON export, or - for standard input")
    parser.add_argument("--checkpoint", action="append", type=parse_checkpoint, default=[],
                        metavar="SEQ:HASH", help="an entry the export must hold (repeatable)")
    arguments = parser.parse_args()
    stream = sys.stdin if arguments.export == "-" else open(arguments.export, encoding="utf-8")
    try:
        with stream:
            checked, head, broken = verify(read_entries(stream), dict(arguments.checkpoint))
    except (ValueError, UnicodeDecodeError) as error:
        print(f"UNREADABLE {error}")
        return 2
    if broken is not None:
        seq, reason = broken
        print(f"BROKEN seq={seq} reason={reason}: {checked} entries verified before it")
        return 1
    head_text = f"{head[0]}:{head[1]}" if head else "none"
    print(f"OK entries={checked} head={head_text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
