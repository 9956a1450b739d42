#!/usr/bin/env bash
# Issue 26, finding 2 (audit amplification): the gateway's memory while a caller with no key
# sends oversized egress calls and the audit goes to a stdout nobody reads.
#
#   benches/audit_flood.sh                        # CALLS=400 CHANNEL_BYTES=1048576
#   SLACKGATE_BIN=/path/to/other/slackgate benches/audit_flood.sh   # e.g. a build from before
#
# slackgate runs with `audit: { path: "-" }`, its stdout a FIFO this script holds open and
# never reads while the calls are made (a stalled reader: the writer thread blocks on the
# full pipe, as it would behind a stuck log shipper). CALLS no-key calls
# `POST /api/chat.postMessage` with a form body whose `channel` is CHANNEL_BYTES control
# bytes (%01..%1F, 3 bytes each on the wire) go to the egress listener, one connection, one
# after the other. Before each and after the last, the gateway's VmRSS is read from
# /proc/PID/status; at the end VmHWM (peak), slackgate_audit_dropped_total, and, once the
# FIFO is drained, the audit lines written and the longest one.
# Everything is on 127.0.0.1 and every step has a timeout; nothing reaches Slack (the
# egress `slack_api` is a closed port: an unknown caller's call is answered locally).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
CALLS=${CALLS:-400}
CHANNEL_BYTES=${CHANNEL_BYTES:-1048576}
QUEUE_BYTES=${QUEUE_BYTES:-}
SCRIPT=audit_flood.sh
WAIT_TRIES=400
# shellcheck source=benches/common.sh
. benches/common.sh
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }

if [ -z "${SLACKGATE_BIN:-}" ]; then
    log "building the release gateway"
    cargo build --release -q -p slackgate
    SLACKGATE_BIN=$BIN/slackgate
fi
[ -x "$SLACKGATE_BIN" ] || die "missing $SLACKGATE_BIN"

TMP=$(mktemp -d /tmp/slackgate-auditflood.XXXXXX)
SG_PID=""
READER_PID=""
cleanup() {
    [ -n "$SG_PID" ] && kill "$SG_PID" 2>/dev/null || true
    exec 8<&- 2>/dev/null || true
    [ -n "$READER_PID" ] && kill "$READER_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

SG_PORT=$(free_port); SG_EGRESS=$(free_port); SG_ADMIN=$(free_port); DEAD_PORT=$(free_port)
# The body: the form-encoded channel plus a little (4x the channel leaves room).
MAX_BODY=$(( CHANNEL_BYTES * 3 + 65536 ))
cat >"$TMP/config.yaml" <<CONF
listen:
  - addr: 127.0.0.1:$SG_PORT
admin: { addr: 127.0.0.1:$SG_ADMIN }
limits: { max_body_bytes: $MAX_BODY, body_read_timeout: 30s }
audit: { path: "-"${QUEUE_BYTES:+, max_queue_bytes: $QUEUE_BYTES} }
policy: policy.yaml
egress:
  listen: { addr: 127.0.0.1:$SG_EGRESS }
  slack_api: http://127.0.0.1:$DEAD_PORT/api/
CONF
{ bench_bot; echo "    methods: [chat.postMessage]"; } >"$TMP/policy.yaml"
export BENCH_GATEWAY_KEY=gk_bench_flood_5b1e07c2d94a BENCH_BOT_TOKEN=xoxb-0000-1111-benchflood
"$SLACKGATE_BIN" check "$TMP/config.yaml" >/dev/null 2>"$TMP/check.log" \
    || die "check failed: $(cat "$TMP/check.log")"

# The stalled reader: this script holds the FIFO open (read-write, so opening it does not
# block) and reads nothing until the measurement is over.
mkfifo "$TMP/audit.fifo"
exec 8<>"$TMP/audit.fifo"
RUST_LOG=warn "$SLACKGATE_BIN" run -c "$TMP/config.yaml" --threads 1 \
    --upgrade-sock "$TMP/upgrade.sock" >"$TMP/audit.fifo" 2>"$TMP/stderr.log" &
SG_PID=$!
wait_port "$SG_EGRESS" slackgate
RSS_START=$(rss_kib "$SG_PID")
log "gateway pid $SG_PID, VmRSS $RSS_START KiB; $CALLS calls with a $CHANNEL_BYTES-byte channel"

timeout 600 python3 - "$SG_EGRESS" "$CALLS" "$CHANNEL_BYTES" "$SG_PID" >"$TMP/calls.txt" <<'PY'
import http.client, sys, time
port, calls, n, pid = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def rss():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
channel = "".join("%%%02X" % (1 + i % 31) for i in range(n)).encode()
body = b"channel=" + channel + b"&text=hi"
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
worst = 0.0
statuses = {}
for i in range(calls):
    t = time.monotonic()
    conn.request("POST", "/api/chat.postMessage", body,
                 {"Content-Type": "application/x-www-form-urlencoded"})
    r = conn.getresponse()
    answer = r.read()
    worst = max(worst, time.monotonic() - t)
    key = (r.status, r.getheader("X-Slackgate-Reason"))
    statuses[key] = statuses.get(key, 0) + 1
    if (i + 1) % 50 == 0:
        print(f"after {i + 1} calls: VmRSS {rss()} KiB", flush=True)
print("answers", " ".join(f"{s}/{why}x{c}" for (s, why), c in sorted(statuses.items())))
print(f"slowest call {worst * 1000:.1f} ms")
PY
sleep 1  # let the writer take what it can: the pipe is full, so it cannot
RSS_END=$(rss_kib "$SG_PID")
HWM=$(hwm_kib "$SG_PID")
DROPPED=$(curl -fsS "http://127.0.0.1:$SG_ADMIN/metrics" | awk '$1=="slackgate_audit_dropped_total" {print $2}')

# Drain the FIFO: the lines the gateway wrote (the pipe's 64 KiB and what was queued).
timeout 60 cat <&8 >"$TMP/audit.out" &
READER_PID=$!
prev=-1
for _ in $(seq 1 200); do
    size=$(stat -c %s "$TMP/audit.out")
    [ "$size" = "$prev" ] && break
    prev=$size
    sleep 0.25
done
kill "$SG_PID" 2>/dev/null || true
wait "$SG_PID" 2>/dev/null || true
SG_PID=""
exec 8<&-
kill "$READER_PID" 2>/dev/null || true
wait "$READER_PID" 2>/dev/null || true
READER_PID=""
LINES=$(grep -c '"direction":"egress"' "$TMP/audit.out" || true)
LONGEST=$(awk '{ if (length($0) > m) m = length($0) } END { print m + 0 }' "$TMP/audit.out")
AUDIT_BYTES=$(stat -c %s "$TMP/audit.out")

echo
echo "slackgate audit flood — $(date -u +%Y-%m-%dT%H:%MZ), $SLACKGATE_BIN (repo at $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'))"
echo "$CALLS no-key egress calls, channel of $CHANNEL_BYTES control bytes each; audit on stdout into a FIFO nobody reads${QUEUE_BYTES:+; audit.max_queue_bytes $QUEUE_BYTES}"
cat "$TMP/calls.txt"
echo "VmRSS start $RSS_START KiB, end $RSS_END KiB, peak (VmHWM) $HWM KiB"
echo "slackgate_audit_dropped_total ${DROPPED:-?}"
echo "audit lines written once drained: $LINES ($AUDIT_BYTES bytes), longest $LONGEST bytes"
