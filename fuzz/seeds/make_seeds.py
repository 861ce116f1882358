#!/usr/bin/env python3
"""Writes the hand-made seed inputs of every fuzz target into fuzz/corpus-work/<target>/ (the
working corpus, not committed). Each input is one mode byte followed by the payload, as the
targets in src/fuzzing/ read it."""
import os, json, pathlib

root = pathlib.Path(__file__).resolve().parent.parent
import sys
work = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else root / "corpus-work"

def put(target, name, mode, payload):
    d = work / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(payload, str):
        payload = payload.encode()
    (d / name).write_bytes(bytes([mode]) + payload)

v = {
    0: ["11010519491231002X", "110105491231002", " 11010519491231002x ", "910105194912310020"],
    1: ["+86 138-1234-5678", "008613812345678", "13812345678", "+44 20 7946 0958", "+1 (415) 555-2671"],
    2: ["David@Example.COM", "a.b+c@xn--fsq.com", "x@y.co"],
    3: ["张三", "麦麦提•艾力", "John  Smith", "O'Brien-Lee", "欧阳娜娜"],
    4: ["E12345678", "G 1234 5678", "H12345678", "12345678", "ABC123456789012"],
    5: ["1990-03-07", "2023-02-30", "1899-12-31"],
    6: ["cn", "cny", "007.5", "room_A-1", "a note"],
    7: ["call 138 1234 5678 at 10:45\n13812345678", "mail a@b.cn\n", "ok\n+8613812345678"],
}
for mode, xs in v.items():
    for i, x in enumerate(xs):
        put("validators", f"m{mode}-{i}", mode, x)
put("validators", "doc-hk", 4 + 8 * 2, "H12345678")
put("validators", "doc-fpr", 4 + 8 * 4, "ABC123456789012")
m = {
    0: ["+8613812345678", "+4420794609", "13812345678"],
    1: ["11010519491231002X"],
    2: ["E12345678", "AB1234"],
    3: ["张三丰", "麦麦提·艾力", "John Smith", "张"],
    4: ["david@example.com"],
    5: ["1990-03-07"],
    6: ["北京市海淀区中关村大街1号", "221B Baker Street, London", "上海市浦东新区小区3号"],
}
for mode, xs in m.items():
    for i, x in enumerate(xs):
        put("mask", f"m{mode}-{i}", mode, x)
pol = root.parent / "policies"
for i, name in enumerate(["fields.toml", "access.toml", "retention.toml", "holidays.toml"]):
    put("policy", name, i, (pol / name).read_text())
bodies = {
    0: {"fields": {"full_name": "张三", "mobile": "+86 138 1234 5678", "id_type": "cn_resident_id",
                   "id_number": "11010519491231002X", "birth_date": "1949-12-31", "gender": "F",
                   "email": "A@b.cn"}, "consents": [{"purpose": "marketing", "separate": False,
                   "notice_version": "2026-11", "channel": "front_desk"}]},
    1: {"fields": {"mobile": None, "birth_date": "1949-12-31", "id_type": "passport"}},
    2: {"fields": {"check_in": "2026-05-01", "check_out": "2026-05-03", "property_code": "SH-01"}},
    3: {"field": "mobile", "value": "138 1234 5678"},
    4: {"fields": ["mobile"], "justification": "guest asked at the desk"},
    5: {"reason": "guest_request"},
    6: {"purpose": "marketing", "separate": True, "notice_version": "2026-11", "channel": "app"},
}
for mode, b in bodies.items():
    put("json_bodies", f"m{mode}", mode, json.dumps(b, ensure_ascii=False))
put("json_bodies", "search-id", 3, json.dumps({"field": "id_number", "value": "110105491231002"}))
put("json_bodies", "search-email", 3, json.dumps({"field": "email", "value": " X@Y.cn"}))
for i, q in enumerate(["", "actor=staff-a&limit=5&after_seq=3", "since=2026-01-01T00:00:00Z&outcome=denied",
                       "guest_id=0191a1d2-0000-7000-8000-000000000001&action=guest.read", "format=csv"]):
    put("audit_query", f"q{i}", i % 2 if q != "format=csv" else 1, q)
# audit_verify: mode 1/2 (edit or cut a genuine export), mode 3 (public key), mode 0 raw.
for which in range(3):
    put("audit_verify", f"edit{which}", 1 + 4 * which, bytes([10, 0, 0, 0, 1]))
    put("audit_verify", f"cut{which}", 2 + 4 * which, bytes([200, 0, 0, 0]) + b"x\n")
put("audit_verify", "key-b64", 3, "MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=")
put("audit_verify", "key-json", 3, '{"algorithm":"Ed25519","public_key":"GbTECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE="}')
put("audit_verify", "raw-jsonl", 0, '{"type":"anchor","format":"guestvault-audit-export/v1","seq":0,"hash":"' + "0" * 64 + '"}\n')
put("audit_verify", "raw-csv", 0, "record,seq,ts\r\nanchor,0,\r\n")
kr = {"format": "guestvault-keyring/v1", "active_kek": 1,
      "keks": [{"version": 1, "key": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}],
      "index_root_key": "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
      "audit_signing_key": "MC4CAQAwBQYDK2VwBCIEIBERERERERERERERERERERERERERERERERERERERERER"}
put("keyring", "plain", 0, json.dumps(kr))
put("keyring", "plain-sealme", 1, json.dumps(kr))
put("keyring", "sealed", 0, json.dumps({"format": "guestvault-keyring-sealed/v1", "kdf": "pbkdf2-hmac-sha256",
    "iterations": 100000, "salt": "AAAAAAAAAAAAAAAAAAAAAA==", "nonce": "AAAAAAAAAAAAAAAA", "ciphertext": "AAAA"}))
