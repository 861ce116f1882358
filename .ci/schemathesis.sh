#!/usr/bin/env bash
# The API contract step of CI: starts the debug build of the vault on a fresh data dir, then
# runs schemathesis (from PyPI, pinned, in a throwaway venv) against its /openapi.json with
# every check, once per role so each operation is also exercised by a caller allowed to use
# it. Needs python3 (with venv and pip) and a built target/debug/guestvault.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
# Test cases per operation and phase; the whole step takes about a minute on 2 cores.
MAX_EXAMPLES=${GV_SCHEMATHESIS_EXAMPLES:-25}
BIN=${CARGO_TARGET_DIR:-$PWD/target}/debug/guestvault

[ -x "$BIN" ] || cargo build --locked

work=$(mktemp -d)
server=
cleanup() {
    local rc=$?
    if [ -n "$server" ]; then
        kill "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
    if [ "$rc" -ne 0 ] && [ -f "$work/server.log" ]; then
        echo "-- the vault's log (last 50 lines)" >&2
        tail -n 50 "$work/server.log" >&2
    fi
    rm -rf "$work"
}
trap cleanup EXIT

python3 -m venv "$work/venv" || {
    echo "python3 cannot create a venv (on Debian and Ubuntu: apt-get install python3-venv)" >&2
    exit 1
}
"$work/venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export GUESTVAULT_STORAGE_DATA_DIR=$work/data
export GUESTVAULT_SERVER_LISTEN=127.0.0.1:$port
export GUESTVAULT_RETENTION_SWEEP_INTERVAL_SECS=0
# Budgets stay on (every answer is still checked against the document), but high enough that
# the generated requests, mostly refusals and random ids, are not throttled into 429s.
budgets=""
for class in reads searches reveals exports writes denied; do
    budgets+="${class}_per_min = 6000000"$'\n'"${class}_burst = 100000"$'\n'
done
cat >"$work/guestvault.toml" <<TOML
[budgets]
${budgets}auth_failures_per_min = 6000000
auth_failures_burst = 100000

[budgets.roles.pms]
${budgets}
TOML
"$BIN" init >/dev/null
"$BIN" serve --config "$work/guestvault.toml" >"$work/server.log" 2>&1 &
server=$!

# Real data for the generated requests to find (half of the path ids come from here, the
# rest are random): a registered guest with a stay and a consent, and the erasure receipt
# of another guest.
"$work/venv/bin/python" - "http://127.0.0.1:$port" \
    "$("$BIN" token --role pms --sub ci-seed --ttl 1h)" \
    "$("$BIN" token --role dsr_officer --sub ci-seed --ttl 1h)" >"$work/seed" <<'PY'
import json, sys, time, urllib.request

base, pms, dsr = sys.argv[1:4]

def call(method, path, token, purpose, body=None):
    req = urllib.request.Request(base + path, method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "X-Purpose": purpose,
                 "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)

for _ in range(100):
    try:
        urllib.request.urlopen(base + "/readyz", timeout=5)
        break
    except OSError:
        time.sleep(0.2)
registration = {"full_name": "张三丰", "gender": "F", "birth_date": "1949-12-31",
    "nationality": "CN", "id_type": "cn_resident_id", "id_number": "11010519491231002X",
    "mobile": "13812345678", "address": "北京市海淀区中关村大街1号"}
ids = []
for _ in range(2):
    ids.append(call("POST", "/v1/guests", pms, "check_in", {"fields": registration})["guest_id"])
guest = ids[0]
call("PATCH", f"/v1/guests/{guest}", pms, "guest_service",
     {"fields": {"email": "zsf@example.com", "dietary_needs": "peanut allergy"}})
call("POST", f"/v1/guests/{guest}/stays", pms, "check_in", {"fields": {"property": "SHA01",
     "check_in": "2026-01-20", "check_out": "2026-01-23", "room_number": "1208",
     "amount": "1280.00", "currency": "CNY", "channel": "direct"}})
call("PUT", f"/v1/guests/{guest}/consents/marketing", pms, "check_in",
     {"notice_version": "2026-12", "channel": "front_desk"})
receipt = call("POST", f"/v1/guests/{ids[1]}/erasure", dsr, "data_subject_request",
     {"reason": "guest_request"})
print(guest, receipt["request_id"])
PY
read -r seeded_guest seeded_request <"$work/seed"
config=$work/schemathesis.toml
cat .ci/schemathesis.toml - >"$config" <<TOML

[dictionaries.guests]
values = ["$seeded_guest"]

[dictionaries.requests]
values = ["$seeded_request"]

[parameters]
"path.id" = { dictionary = "guests", probability = 0.5 }
"path.request_id" = { dictionary = "requests", probability = 0.5 }
TOML

status=0
# role, purpose, tags (the operations that role is for)
while read -r role purpose tags; do
    token=$("$BIN" token --role "$role" --sub ci --ttl 1h)
    include=()
    for tag in $tags; do include+=(--include-tag "$tag"); done
    echo "-- schemathesis as $role ($purpose): $tags"
    # From the temp dir: schemathesis keeps a `.schemathesis/` cache in its working dir.
    (cd "$work" && "$work/venv/bin/schemathesis" --config-file "$config" --no-color run \
        "http://127.0.0.1:$port/openapi.json" --wait-for-schema 30 \
        --checks all --max-examples "$MAX_EXAMPLES" --generation-database none \
        -H "Authorization: Bearer $token" -H "X-Purpose: $purpose" \
        "${include[@]}") || status=1
done <<'ROLES'
pms check_in guests consents ops
dsr_officer data_subject_request erasure
compliance_officer audit audit policy
admin administration admin
ROLES
exit "$status"
