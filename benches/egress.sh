#!/usr/bin/env bash
# The egress door under load: Web API calls (chat.postMessage as slack_sdk sends it, JSON,
# `Authorization: Bearer`) through slackgate's egress listener, against the same calls
# straight to the Slack stand-in, and through nginx injecting a static Authorization header
# (the most a plain proxy does: no bot identity, no method/channel/argument rules, no
# audit), all in one run, targets interleaved.
#
#   benches/egress.sh                  # RUNS=3 DURATION=10 WARMUP=2 CONNS=64 THREADS=1
#
# The stand-in is the testkit's (`slackstandin`, plain HTTP on 127.0.0.1, one thread): every
# target reaches it the same way, so the differences are the proxies' own. slackgate checks
# the key (constant time over every bot), the method, the channel, the denied arguments and
# a rate limit, swaps the key for the token, writes one audit line per call and counts it.
# Prints req/s and p50/p99/p99.9 (medians over the runs), the latency slackgate and nginx
# add over the direct calls, and slackgate's throughput relative to nginx.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BODY_LEN=${BODY_LEN:-200}
SCRIPT=egress.sh
# shellcheck source=benches/common.sh
. benches/common.sh
closed_loop_defaults
install_tools

log "building release binaries (slackgate, loadgen, slackstandin)"
cargo build --release -q -p slackgate -p slackgate-benches --bins
SLACKGATE_BIN=${SLACKGATE_BIN:-$BIN/slackgate}
for b in "$SLACKGATE_BIN" "$BIN/loadgen" "$BIN/slackstandin"; do [ -x "$b" ] || die "missing $b"; done

TMP=$(mktemp -d /tmp/slackgate-egress.XXXXXX)
PIDS=()
cleanup() {
    exec 7>&- 2>/dev/null || true
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM
ulimit -n 65536 2>/dev/null || true


TOKEN="xoxb-0000-1111-benchrealtoken"
KEY="gk_bench_7d0c5e2a9b4f16e83a51"

# --- the Slack stand-in (its stdin is fd 7's pipe: closing fd 7 stops it) ------------------
mkfifo "$TMP/standin.in"
taskset -c "$CLIENT_CPU" "$BIN/slackstandin" "$TOKEN" <"$TMP/standin.in" >"$TMP/standin.out" 2>"$TMP/standin.log" &
PIDS+=($!)
exec 7>"$TMP/standin.in"
for _ in $(seq 1 200); do grep -q '^ADDR ' "$TMP/standin.out" 2>/dev/null && break; sleep 0.05; done
SLACK_ADDR=$(awk '/^ADDR / {print $2}' "$TMP/standin.out")
[ -n "$SLACK_ADDR" ] || die "the stand-in did not start (logs in $TMP)"
SLACK_PORT=${SLACK_ADDR##*:}
NGINX_PORT=$(free_port); SG_PORT=$(free_port); SG_EGRESS=$(free_port); SG_ADMIN=$(free_port)

# --- nginx: static Authorization header, nothing else -------------------------------------
mkdir -p "$TMP/nginx"
cat >"$TMP/nginx/nginx.conf" <<CONF
$(nginx_head warn slack "$SLACK_ADDR")
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location /api/ {
$(nginx_pass slack)
            proxy_set_header Authorization "Bearer $TOKEN";
        }
    }
}
CONF
taskset -c "$PROXY_CPU" nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" 2>"$TMP/nginx/stderr.log" &
PIDS+=($!)
wait_port "$NGINX_PORT" nginx

# --- slackgate with a bot ------------------------------------------------------------------
mkdir -p "$TMP/slackgate"
cat >"$TMP/slackgate/config.yaml" <<CONF
listen:
  - addr: 127.0.0.1:$SG_PORT
admin: { addr: 127.0.0.1:$SG_ADMIN }
audit: { path: $TMP/slackgate/audit.log }
policy: policy.yaml
egress:
  listen: { addr: 127.0.0.1:$SG_EGRESS }
  slack_api: http://$SLACK_ADDR/api/
CONF
{ bench_bot; cat <<CONF; } >"$TMP/slackgate/policy.yaml"
    team: T0BENCH
    methods: [chat.postMessage, chat.update, "reactions.*"]
    channels: [C0BENCH, C0OTHER]
    deny_args: [username, icon_url, icon_emoji]
    rate_limits:
      - { per: method, rate: 1000000/s, burst: 1000000 }
CONF
export BENCH_GATEWAY_KEY=$KEY BENCH_BOT_TOKEN=$TOKEN
"$SLACKGATE_BIN" check "$TMP/slackgate/config.yaml" >/dev/null
RUST_LOG=warn taskset -c "$PROXY_CPU" "$SLACKGATE_BIN" run -c "$TMP/slackgate/config.yaml" \
    --threads "$THREADS" --upgrade-sock "$TMP/slackgate/upgrade.sock" >"$TMP/slackgate/stdout.log" 2>&1 &
PIDS+=($!)
wait_port "$SG_EGRESS" slackgate

# --- sanity: each target answers ok, and slackgate denies what it must ---------------------
probe() { curl -fsS "http://127.0.0.1:$1/api/chat.postMessage" -H "Authorization: Bearer $2" \
    -H 'Content-Type: application/json; charset=utf-8' -d "$3"; }
probe "$SLACK_PORT" "$TOKEN" '{"channel":"C0BENCH","text":"hi"}' | grep -q '"ok":true' || die "stand-in direct call failed"
probe "$NGINX_PORT" "$KEY" '{"channel":"C0BENCH","text":"hi"}' | grep -q '"ok":true' || die "nginx call failed"
probe "$SG_EGRESS" "$KEY" '{"channel":"C0BENCH","text":"hi"}' | grep -q '"ok":true' || die "slackgate call failed"
probe "$SG_EGRESS" "$KEY" '{"channel":"C0NOPE","text":"hi"}' | grep -q '"error":"channel_denied"' || die "slackgate let a denied channel through"

RESULTS=$TMP/results.txt
: >"$RESULTS"
TARGETS=("direct:$SLACK_PORT:$TOKEN" "nginx:$NGINX_PORT:$KEY" "slackgate:$SG_EGRESS:$KEY")
log "load: $RUNS run(s) x ${#TARGETS[@]} targets x (${WARMUP}s warm-up + ${DURATION}s), $CONNS connections"
for run in $(seq 1 "$RUNS"); do
    for t in "${TARGETS[@]}"; do
        IFS=: read -r name port key <<<"$t"
        line=$(taskset -c "$CLIENT_CPU" "$BIN/loadgen" run --addr "127.0.0.1:$port" \
            --path /api/chat.postMessage --egress-key "$key" --conns "$CONNS" \
            --duration "$DURATION" --warmup "$WARMUP" --body-len "$BODY_LEN" --label "$name" | grep '^RESULT')
        echo "run=$run $line" >>"$RESULTS"
        case "$line" in
            *" non200=0 errors=0 "*) ;;
            *) log "WARNING: $name answered non-200 or failed: $line";;
        esac
    done
done
AUDIT_LINES=$(wc -l <"$TMP/slackgate/audit.log")

field() { grep " label=$1 " "$RESULTS" | tr ' ' '\n' | awk -F= -v k="$2" '$1==k {print $2}' | median; }
echo
echo "slackgate egress comparison — $(date -u +%Y-%m-%dT%H:%MZ)"
echo "machine: $NCPU CPU(s), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "nginx $NGINX_VERSION, slackgate $SLACKGATE_BIN (repo at $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'))"
echo "each proxy: $THREADS worker thread(s) pinned to CPU $PROXY_CPU; load generator + Slack stand-in (1 thread each) on CPU $CLIENT_CPU"
echo "load: $CONNS keep-alive connections, closed loop, ${WARMUP}s warm-up + ${DURATION}s measured, median of $RUNS run(s); chat.postMessage, JSON body ~$BODY_LEN bytes"
echo
printf '%-10s %10s %9s %9s %10s\n' target req/s p50_us p99_us p99.9_us
for name in direct nginx slackgate; do
    printf '%-10s %10s %9s %9s %10s\n' "$name" "$(field "$name" rps)" "$(field "$name" p50_us)" \
        "$(field "$name" p99_us)" "$(field "$name" p999_us)"
done
echo
awk -v d50="$(field direct p50_us)" -v d99="$(field direct p99_us)" \
    -v n50="$(field nginx p50_us)" -v n99="$(field nginx p99_us)" \
    -v s50="$(field slackgate p50_us)" -v s99="$(field slackgate p99_us)" \
    -v srps="$(field slackgate rps)" -v nrps="$(field nginx rps)" -v drps="$(field direct rps)" 'BEGIN {
    printf "added over direct: nginx p50 +%d us, p99 +%d us; slackgate p50 +%d us, p99 +%d us (target p99 <= +300 us)\n", n50-d50, n99-d99, s50-d50, s99-d99
    printf "slackgate/nginx throughput: %.2fx (target >= 0.9x); slackgate/direct %.2fx, nginx/direct %.2fx\n", (nrps>0? srps/nrps : 0), (drps>0? srps/drps : 0), (drps>0? nrps/drps : 0)
}'
echo "slackgate wrote $AUDIT_LINES egress audit lines"
echo
echo "raw results:"
cat "$RESULTS"
