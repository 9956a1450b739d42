#!/usr/bin/env bash
# `slackgate suggest` over a large synthetic audit trail: throughput (MB/s of audit read) and
# peak RSS (VmHWM, from GNU time's "Maximum resident set size").
#
#   benches/suggest.sh                          # SIZE_MB=1024: a 1 GiB audit file
#   SIZE_MB=100 benches/suggest.sh              # a smaller file
#   COMPRESS=1 benches/suggest.sh                   # the same trail, gzipped (a rotated file)
#   SLACKGATE_BIN=/path/to/slackgate benches/suggest.sh
#
# The file is written into a temp dir (python3, deterministic): egress records of 8 bots
# (400 distinct channels, 40 methods, 3 teams, shadowed would-be denials, scope headers)
# and inbound records of 4 routes, in the gateway's own field order, about 330 bytes a line.
# The release binary reads it once; the script prints the size, the lines, the wall time,
# MB/s and the peak RSS, and deletes the file on exit.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
SIZE_MB=${SIZE_MB:-1024}
COMPRESS=${COMPRESS:-0}
SCRIPT=suggest.sh
# shellcheck source=benches/common.sh
. benches/common.sh

if [ -z "${SLACKGATE_BIN:-}" ]; then
    log "building the release gateway"
    cargo build --release -q -p slackgate
    SLACKGATE_BIN=$BIN/slackgate
fi
[ -x "$SLACKGATE_BIN" ] || die "missing $SLACKGATE_BIN"
command -v /usr/bin/time >/dev/null || die "needs GNU time (/usr/bin/time; apt-get install time)"

TMP=$(mktemp -d /tmp/slackgate-suggest.XXXXXX)
trap 'rm -rf "$TMP"' EXIT INT TERM

cat >"$TMP/policy.yaml" <<'EOF'
version: 1
apps:
  app0: { signing_secrets: [{ id: current, env: BENCH_SIGNING_SECRET }] }
upstreams:
  up: { targets: ["127.0.0.1:9"] }
routes:
  - { name: route0, path: /r0, app: app0, upstream: up, mode: shadow }
  - { name: route1, path: /r1, app: app0, upstream: up, mode: shadow }
  - { name: route2, path: /r2, app: app0, upstream: up }
  - { name: route3, path: /r3, app: app0, upstream: up }
bots:
EOF
for i in 0 1 2 3 4 5 6 7; do
    printf '  bot%s:\n    mode: shadow\n    key: { env: BOT%s_KEY }\n    token: { env: BOT%s_TOKEN }\n    methods: [chat.postMessage]\n' \
        "$i" "$i" "$i" >>"$TMP/policy.yaml"
done

log "writing a ${SIZE_MB} MiB audit file in $TMP"
python3 - "$TMP/audit.log" "$SIZE_MB" <<'EOF'
import json, random, sys
path, size = sys.argv[1], int(sys.argv[2]) * 1024 * 1024
rnd = random.Random(26)
methods = ["chat.postMessage", "chat.update", "chat.delete", "conversations.info",
           "conversations.history", "reactions.add", "reactions.remove", "users.info",
           "files.getUploadURLExternal", "files.completeUploadExternal"] + \
          [f"x.method{i}" for i in range(30)]
scopes = {"chat.postMessage": "chat:write", "conversations.info": "channels:read,groups:read,im:read,mpim:read",
          "reactions.add": "reactions:write", "users.info": "users:read"}
channels = [f"C0{i:06d}" for i in range(400)]
teams = ["T0ACME", "T0BETA", "T0GAMMA"]
lines = []
for n in range(20000):
    sec = n % 86400
    ts = f"2026-12-0{1 + n % 4}T{sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}.{n % 1000000:06d}Z"
    if n % 5 == 0:
        kind, ev, cmd = rnd.choice([("event_callback", "app_mention", None), ("event_callback", "message", None),
                                    ("slash_command", None, "/ticket"), ("block_actions", None, None)])
        rec = {"ts": ts, "direction": "inbound", "route": f"route{n % 4}", "reason": "allowed", "status": 200,
               "shadow": False, "client_ip": "10.0.0.7", "app": "app0", "secret_id": "current", "kind": kind,
               "api_app_id": "A0APP", "enterprise_id": None, "team_id": rnd.choice(teams),
               "user_id": f"U0{rnd.randrange(1000):04d}", "channel_id": rnd.choice(channels), "event_type": ev,
               "command": cmd, "event_id": f"Ev0{n:08d}" if ev else None, "retry_num": None, "rule": None,
               "upstream": "up", "upstream_status": 200, "duration_us": rnd.randrange(100, 9000)}
    else:
        m = rnd.choice(methods)
        shadow = rnd.random() < 0.1
        rec = {"ts": ts, "direction": "egress", "bot": f"bot{n % 8}", "method": m, "team_id": rnd.choice(teams + [None]),
               "channel_id": rnd.choice(channels), "reason": "channel_denied" if shadow else "allowed", "status": 200,
               "rule": "channels" if shadow else None, "slack_ok": True, "slack_error": None, "upstream_status": 200,
               "duration_us": rnd.randrange(1000, 90000), "function_execution_id": None, "shadow": shadow,
               "scopes_needed": scopes.get(m, ""), "scopes_granted": None}
    lines.append(json.dumps(rec, separators=(",", ":")) + "\n")
block = "".join(lines).encode()
with open(path, "wb") as f:
    written = 0
    while written < size:
        f.write(block)
        written += len(block)
EOF
FILE=$TMP/audit.log
if [ "$COMPRESS" = 1 ]; then
    log "gzipping it"
    gzip -1 "$FILE"
    FILE=$FILE.gz
fi
BYTES=$(stat -c %s "$FILE")
RAW=$BYTES
[ "$COMPRESS" = 1 ] && RAW=$(gzip -l "$FILE" | awk 'NR==2 {print $2}')
LINES=$([ "$COMPRESS" = 1 ] && zcat "$FILE" | wc -l || wc -l <"$FILE")

log "running slackgate suggest"
START=$(date +%s.%N)
/usr/bin/time -f '%M %e %U %S' -o "$TMP/time" \
    "$SLACKGATE_BIN" suggest -c "$TMP/policy.yaml" --audit "$FILE" >"$TMP/suggested.yaml" 2>"$TMP/stderr" \
    || { cat "$TMP/stderr" >&2; die "suggest failed"; }
END=$(date +%s.%N)
read -r MAXRSS_KB WALL USER SYS <"$TMP/time"
SECS=$(awk -v a="$START" -v b="$END" 'BEGIN {printf "%.2f", b - a}')
printf 'file: %s bytes on disk (%s bytes of audit, %s lines)%s\n' "$BYTES" "$RAW" "$LINES" \
    "$([ "$COMPRESS" = 1 ] && echo ', gzip -1')"
printf 'wall: %s s (user %s s, sys %s s)\n' "$SECS" "$USER" "$SYS"
awk -v b="$RAW" -v s="$SECS" -v l="$LINES" 'BEGIN {printf "throughput: %.0f MB/s of audit, %.2f M lines/s\n", b / 1e6 / s, l / 1e6 / s}'
printf 'peak RSS: %s KiB (%.1f MiB)\n' "$MAXRSS_KB" "$(awk -v k="$MAXRSS_KB" 'BEGIN {print k / 1024}')"
tail -n 1 "$TMP/stderr"
printf 'suggested policy: %s lines\n' "$(wc -l <"$TMP/suggested.yaml")"
