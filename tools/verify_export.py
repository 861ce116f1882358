#!/usr/bin/env python3
"""Reference verifier of a GuestVault audit export (`guestvault-audit-export/v1`), written
from README.md's "Export file format" section alone, as an outside auditor would (issue 15).
It needs only the `cryptography` package (Ed25519).

    python3 tools/verify_export.py FILE --public-key KEYFILE

Exit status as `guestvault audit verify`: 0 intact, 1 not intact, 2 the file or the key could
not be read. The test suite runs it beside `guestvault audit verify` on genuine and tampered
exports (tests/api/reference_verifier.rs), so the documented format and the vault agree.
"""
import argparse
import base64
import binascii
import csv
import hashlib
import io
import json
import re
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

FORMAT_ID = "guestvault-audit-export/v1"
EXPORT_DOMAIN = b"guestvault/export/v1"
CHECKPOINT_DOMAIN = b"guestvault/checkpoint/v1"
SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
EVENT_KEYS = ["seq", "ts", "request_id", "actor", "role", "purpose", "action", "guest_id",
              "fields", "outcome", "reason", "rules", "justification"]
HEADER = ["record"] + EVENT_KEYS + ["prev_hash", "hash", "key_id", "signature", "export_digest",
                                    "export_signature", "value_hashes"]
ALL_KEYS = {"type", "format", "value_hashes", "prev_hash", "hash", "key_id", "signature",
            "export_digest", "export_signature"} | set(EVENT_KEYS)
KEYS_OF = {
    "anchor": {"type", "format", "seq", "hash"},
    "stub": {"seq", "hash"},
    "checkpoint": {"type", "seq", "hash", "key_id", "signature", "export_digest",
                   "export_signature"},
}
CSV_USED = {"anchor": {0, 1, 15}, "stub": {0, 1, 15}, "checkpoint": {0, 1, 15, 16, 17, 18, 19}}
SUFFIX = re.compile(rb',"prev_hash":"([0-9a-fA-F]{64})","hash":"([0-9a-fA-F]{64})"\}$')
EVENT_START = re.compile(rb'^\{"seq":(0|[1-9][0-9]*),"ts":"')
MAX_RECORD = 1 << 20


class NotIntact(Exception):
    def __init__(self, line, problem):
        super().__init__("line %d: %s" % (line, problem))


class Unreadable(Exception):
    pass


def read_key(path):
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read().strip()
    except (OSError, UnicodeDecodeError) as e:
        raise Unreadable("public key: %s" % e)
    if text.startswith("{"):
        try:
            answer = json.loads(text)
            if answer.get("algorithm", "Ed25519") != "Ed25519":
                raise Unreadable("public key: the algorithm is not Ed25519")
            text = answer["public_key"].strip()
        except (ValueError, KeyError, AttributeError, TypeError):
            raise Unreadable("public key: unreadable JSON")
    if text.startswith("-----BEGIN PUBLIC KEY-----"):
        text = "".join(text.split("-----BEGIN PUBLIC KEY-----", 1)[1]
                       .split("-----END PUBLIC KEY-----")[0].split())
    raw = b64(text)
    if raw is None:
        raise Unreadable("public key: not base64")
    if len(raw) == 44 and raw.startswith(SPKI_PREFIX):
        raw = raw[12:]
    if len(raw) != 32:
        raise Unreadable("public key: expected 32 raw bytes or an Ed25519 SubjectPublicKeyInfo")
    return raw


def b64(s):
    """Standard base64 with padding, canonical (the encoding of the bytes it decodes to)."""
    try:
        raw = base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if base64.b64encode(raw).decode() == s else None


def hex32(v, name):
    if not isinstance(v, str) or len(v) != 64:
        raise ValueError("`%s` is not 32 bytes of hex" % name)
    try:
        return bytes.fromhex(v)
    except ValueError:
        raise ValueError("`%s` is not 32 bytes of hex" % name)


def canonical(event):
    """The canonical JSON of an event (serde_json's compact form, keys in order)."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def no_duplicates(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError("duplicate key")
        d[k] = v
    return d


def u64(v):
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 1 << 64:
        raise ValueError("`seq` is not a number")
    return v


def build(kind, r):
    """One record as (kind, seq, hash, extra) from a dict of its present values."""
    if "seq" not in r or r["seq"] is None:
        raise ValueError("%s record lacks `seq`" % kind)
    seq = u64(r["seq"])
    if kind in ("anchor", "stub"):
        return kind, seq, hex32(r.get("hash"), "hash"), None
    if kind == "checkpoint":
        for k in ("key_id", "signature", "export_signature"):
            if not isinstance(r.get(k), str):
                raise ValueError("checkpoint record lacks `%s`" % k)
        sig, xsig = b64(r["signature"]), b64(r["export_signature"])
        if sig is None or xsig is None:
            raise ValueError("a signature is not base64")
        return kind, seq, hex32(r.get("hash"), "hash"), {
            "key_id": r["key_id"], "signature": sig,
            "export_digest": hex32(r.get("export_digest"), "export_digest"),
            "export_signature": xsig}
    raise ValueError("unknown record kind")


def json_record(line):
    m, s = EVENT_START.match(line), SUFFIX.search(line)
    if m and s:
        body = line[:s.start()] + b"}"
        prev, stated = bytes.fromhex(s.group(1).decode()), bytes.fromhex(s.group(2).decode())
        return "event", int(m.group(1)), stated, {
            "prev_hash": prev, "computed": hashlib.sha256(prev + body).digest()}
    try:
        r = json.loads(line.decode("utf-8"), object_pairs_hook=no_duplicates)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("not valid JSON")
    if not isinstance(r, dict) or not set(r) <= ALL_KEYS:
        raise ValueError("unexpected key or value type")
    present = {k for k, v in r.items() if v is not None}
    kind = r.get("type") or ("stub" if "ts" not in present else "event")
    if kind == "event":
        raise ValueError("an event line must be the canonical JSON of the event")
    if kind not in KEYS_OF or not present <= KEYS_OF[kind]:
        raise ValueError("unexpected keys in a %s record" % kind)
    if kind == "anchor" and r.get("format") != FORMAT_ID:
        raise ValueError("the anchor must name format `%s`" % FORMAT_ID)
    return build(kind, r)


def needs_neutralising(v):
    return v[:1] in ("=", "+", "-", "@", "\t", "\r", "'")


def csv_record(row):
    if len(row) not in (len(HEADER), len(HEADER) - 1):
        raise ValueError("expected %d cells, found %d" % (len(HEADER), len(row)))
    kind = row[0]
    if kind != "event":
        used = CSV_USED.get(kind)
        if used is None:
            raise ValueError("unknown record kind")
        if any(v for i, v in enumerate(row) if i not in used):
            raise ValueError("a cell this record does not use is not empty")
        seq = row[1]
        if not re.fullmatch(r"0|[1-9][0-9]*", seq):
            raise ValueError("`seq` is not a number")
        r = {"seq": int(seq), "hash": row[15] or None, "key_id": row[16] or None,
             "signature": row[17] or None, "export_digest": row[18] or None,
             "export_signature": row[19] or None}
        return build(kind, r)
    if any(row[i] for i in range(16, 20)):
        raise ValueError("a cell this record does not use is not empty")
    cells = []
    for i, v in enumerate(row):
        if i > 1:
            if v.startswith("'") and needs_neutralising(v[1:]):
                v = v[1:]
            elif needs_neutralising(v):
                raise ValueError("a cell is not in canonical CSV form (formula quoting)")
        cells.append(v)

    def array(i, name):
        v = cells[i]
        if not v:
            raise ValueError("event record lacks `%s`" % name)
        parsed = json.loads(v)
        if canonical(parsed).decode() != v or not isinstance(parsed, list):
            raise ValueError("`%s` is not in canonical JSON form" % name)
        return parsed

    if not re.fullmatch(r"0|[1-9][0-9]*", cells[1]):
        raise ValueError("`seq` is not a number")
    if cells[10] not in ("allowed", "denied", "error"):
        raise ValueError("`outcome` is not allowed, denied or error")
    event = {
        "seq": u64(int(cells[1])), "ts": cells[2], "request_id": cells[3], "actor": cells[4],
        "role": cells[5], "purpose": cells[6] or None, "action": cells[7],
        "guest_id": cells[8] or None, "fields": array(9, "fields"), "outcome": cells[10],
        "reason": cells[11] or None, "rules": array(12, "rules"),
        "justification": cells[13] or None,
    }
    if len(cells) > 20 and cells[20]:
        vh = json.loads(cells[20])
        if canonical(vh).decode() != cells[20]:
            raise ValueError("`value_hashes` is not in canonical JSON form")
        if vh:
            event["value_hashes"] = vh
    prev, stated = hex32(cells[14], "prev_hash"), hex32(cells[15], "hash")
    return "event", event["seq"], stated, {
        "prev_hash": prev, "computed": hashlib.sha256(prev + canonical(event)).digest()}


def records(data):
    """(line number, record or error) for each record of the file."""
    start = data.lstrip()[:1]
    if start == b"{":
        for no, line in enumerate(data.split(b"\n"), 1):
            if not line.strip():
                continue
            if len(line) + 1 > MAX_RECORD:
                yield no, ValueError("line too long")
                continue
            if line.endswith(b"\r"):
                line = line[:-1]
            try:
                yield no, json_record(line)
            except ValueError as e:
                yield no, e
        return
    text = data.decode("utf-8", errors="strict")
    reader = csv.reader(io.StringIO(text, newline=""))
    header_seen = False
    while True:
        line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            yield line, ValueError("unreadable CSV: %s" % e)
            return
        if not row:
            continue
        if not header_seen:
            header_seen = True
            if row != HEADER:
                yield line, ValueError("not a GuestVault audit export (unexpected CSV header)")
                return
            continue
        try:
            yield line, csv_record(row)
        except (ValueError, TypeError) as e:
            yield line, ValueError(str(e))


def verify(data, key):
    anchor, nxt, prev, last_line, cp = None, 0, bytes(32), 0, None
    digest = hashlib.sha256(EXPORT_DOMAIN)
    events = stubs = 0
    for line, rec in records(data):
        last_line = line
        if cp is not None:
            raise NotIntact(line, "records after the final checkpoint")
        if isinstance(rec, Exception):
            raise NotIntact(line, "malformed record: %s" % rec)
        kind, seq, h, extra = rec
        if kind == "checkpoint":
            cp = (line, seq, h, extra)
            continue
        if kind == "anchor":
            if anchor is not None or (seq == 0 and h != bytes(32)):
                raise NotIntact(line, "misplaced or false anchor")
            anchor, nxt = seq, seq
        elif anchor is None:
            raise NotIntact(line, "the file does not start with an anchor record")
        elif kind == "event" and seq == nxt:
            if extra["prev_hash"] != prev:
                raise NotIntact(line, "prev_hash does not match the previous record's hash")
            if extra["computed"] != h:
                raise NotIntact(line, "hash does not match the event's content")
        if seq != nxt:
            raise NotIntact(line, "record out of place (found seq %d)" % seq)
        events += kind == "event"
        stubs += kind == "stub"
        digest.update({"anchor": b"A", "event": b"E", "stub": b"S"}[kind]
                      + seq.to_bytes(8, "big") + h)
        prev, nxt = h, seq + 1
    if anchor is None:
        raise NotIntact(max(last_line, 1), "the file does not start with an anchor record")
    last = nxt - 1
    if cp is None:
        raise NotIntact(last_line, "no checkpoint record at the end: the file is truncated")
    line, seq, h, extra = cp
    if seq != last:
        raise NotIntact(line, "the checkpoint covers seq %d, not the last record" % seq)
    if h != prev:
        raise NotIntact(line, "the checkpoint hash does not match the last record")
    key_id = hashlib.sha256(key).hexdigest()[:16]
    if extra["key_id"] != key_id:
        raise NotIntact(line, "signed by key %s, not by the given key %s"
                        % (extra["key_id"][:16], key_id))
    public = Ed25519PublicKey.from_public_bytes(key)
    try:
        public.verify(extra["signature"], CHECKPOINT_DOMAIN + seq.to_bytes(8, "big") + h)
    except InvalidSignature:
        raise NotIntact(line, "the checkpoint signature does not verify")
    try:
        if digest.digest() != extra["export_digest"]:
            raise InvalidSignature()
        public.verify(extra["export_signature"], EXPORT_DOMAIN + extra["export_digest"])
    except InvalidSignature:
        raise NotIntact(line, "the export signature does not cover these records")
    return anchor, last, events, stubs, key_id


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("--public-key", required=True)
    args = parser.parse_args()
    try:
        key = read_key(args.public_key)
        with open(args.file, "rb") as f:
            data = f.read()
    except Unreadable as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    except OSError as e:
        print("error: cannot open `%s`: %s" % (args.file, e), file=sys.stderr)
        return 2
    try:
        anchor, last, events, stubs, key_id = verify(data, key)
    except NotIntact as e:
        print("NOT INTACT: %s: %s" % (args.file, e), file=sys.stderr)
        return 1
    except UnicodeDecodeError:
        print("NOT INTACT: %s: the file is not UTF-8" % args.file, file=sys.stderr)
        return 1
    print("intact: export of seq %d..=%d (%d events, %d stubs), anchored at seq %d, signed by "
          "key %s" % (anchor + 1, last, events, stubs, anchor, key_id))
    return 0


if __name__ == "__main__":
    sys.exit(main())
