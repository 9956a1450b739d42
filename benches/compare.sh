#!/usr/bin/env bash
# End-to-end load comparison of slackgate against the bot alone, nginx (plain reverse
# proxy, no checks) and HAProxy (the closest equivalent of slackgate's checks), in one run.
#
#   benches/compare.sh                 # RUNS=3 DURATION=10 WARMUP=2 CONNS=64 THREADS=1
#   SLACKGATE_BIN=/path/to/slackgate benches/compare.sh   # a gateway built elsewhere
#   SLACKGATE_BIN_B=/path/to/other benches/compare.sh     # A/B: adds target slackgate_b,
#                                                         # same config, interleaved
#
# Installs nginx and haproxy from Debian packages if missing (apt-get; needs root or sudo),
# builds slackgate and the bench binaries in release mode, starts everything on 127.0.0.1
# only, runs a fixed-duration closed-loop load against each target RUNS times (targets
# interleaved), prints req/s and p50/p99/p99.9 (medians over the runs) and the ratios, then
# measures slackgate's RSS with IDLE_CONNS idle keep-alive connections and the in-process
# memory of 1M rate-limit keys. Every process it starts is stopped on exit.
#
# CPU placement (the machine has few cores, shared with the load generator): the proxy under
# test runs pinned to PROXY_CPU with THREADS worker threads; the load generator and the echo
# bot share CLIENT_CPU. Override with PROXY_CPU=... CLIENT_CPU=... (taskset -c lists).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-64}
THREADS=${THREADS:-1}
BODY_LEN=${BODY_LEN:-1024}
IDLE_CONNS=${IDLE_CONNS:-1000}
SCRIPT=compare.sh
# shellcheck source=benches/common.sh
. benches/common.sh
case "$HAPROXY_VERSION" in
    1.*|2.[0-5]|2.[0-5].*) die "HAProxy $HAPROXY_VERSION found; the hmac converter needs 2.6+ (apt-cache policy haproxy)";;
esac

# --- build -------------------------------------------------------------------------------
log "building release binaries (slackgate, loadgen, echobot, memprobe)"
if [ -n "${SLACKGATE_BIN:-}" ]; then
    # A/B runs of a gateway built elsewhere (e.g. a branch with a proxy change).
    cargo build --release -q -p slackgate-benches --bins
else
    cargo build --release -q -p slackgate -p slackgate-benches --bins
fi
BIN=$ROOT/target/release
SLACKGATE_BIN=${SLACKGATE_BIN:-$BIN/slackgate}
for b in "$SLACKGATE_BIN" "$BIN/loadgen" "$BIN/echobot" "$BIN/memprobe"; do [ -x "$b" ] || die "missing $b"; done

# --- scratch dir, ports, cleanup -----------------------------------------------------------
TMP=$(mktemp -d /tmp/slackgate-compare.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] && kill "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] && wait "$p" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

BOT_PORT=$(free_port); NGINX_PORT=$(free_port); HAPROXY_PORT=$(free_port)
SG_PORT=$(free_port); SG_ADMIN=$(free_port)

# --- upstream bot -------------------------------------------------------------------------
taskset -c "$CLIENT_CPU" "$BIN/echobot" "127.0.0.1:$BOT_PORT" 1 2>"$TMP/echobot.log" &
PIDS+=($!)
wait_port "$BOT_PORT" echobot

# --- nginx: plain reverse proxy, no checks ---------------------------------------------
mkdir -p "$TMP/nginx"
cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes $THREADS;
daemon off;
master_process on;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    keepalive_requests 1000000;
    upstream bot { server 127.0.0.1:$BOT_PORT; keepalive 256; keepalive_requests 1000000; }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            proxy_pass http://bot;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
taskset -c "$PROXY_CPU" nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" 2>"$TMP/nginx/stderr.log" &
PIDS+=($!)
wait_port "$NGINX_PORT" nginx

# --- HAProxy with the equivalent checks ------------------------------------------------
SLACK_SECRET_B64=$(printf '%s' "$BENCH_SIGNING_SECRET" | base64 -w0)
HAPROXY_ENV=(LISTEN="127.0.0.1:$HAPROXY_PORT" UPSTREAM="127.0.0.1:$BOT_PORT" THREADS="$THREADS"
    SLACK_SECRET_B64="$SLACK_SECRET_B64" MAX_SKEW="$MAX_SKEW")
env "${HAPROXY_ENV[@]}" haproxy -c -q -f "$ROOT/benches/conf/haproxy.cfg" \
    || die "haproxy rejected benches/conf/haproxy.cfg (hmac/secure_memcmp need HAProxy 2.6+ with OpenSSL)"
env "${HAPROXY_ENV[@]}" taskset -c "$PROXY_CPU" haproxy -db -f "$ROOT/benches/conf/haproxy.cfg" \
    >"$TMP/haproxy.log" 2>&1 &
PIDS+=($!)
wait_port "$HAPROXY_PORT" haproxy

# --- slackgate with a full policy --------------------------------------------------------
mkdir -p "$TMP/slackgate"
cat >"$TMP/slackgate/config.yaml" <<EOF
listen:
  - addr: 127.0.0.1:$SG_PORT
admin: { addr: 127.0.0.1:$SG_ADMIN }
trusted_proxies: []
limits: { max_body_bytes: 65536, max_clock_skew: ${MAX_SKEW}s }
audit: { path: $TMP/slackgate/audit.log }
policy: policy.yaml
EOF
cat >"$TMP/slackgate/policy.yaml" <<EOF
version: 1
apps:
  bench:
    api_app_id: A0HELPDESK
    signing_secrets:
      - { id: current, env: BENCH_SIGNING_SECRET }
upstreams:
  bot: { targets: [127.0.0.1:$BOT_PORT] }
groups:
  oncall: [U0111, U0222]
routes:
  - name: events
    path: /slack/events
    app: bench
    upstream: bot
    mode: enforce
    on_deny: reject
    source_ips: { allow: [127.0.0.0/8], deny: [192.0.2.0/24] }
    allow:
      teams: [T0ACME]
      users: [U0444, "@oncall"]
      events: [message, app_mention]
    deny: { users: [U0BAD] }
    rate_limits:
      - { per: ip, rate: 1000000/s, burst: 1000000 }
      - { per: team, rate: 1000000/s, burst: 1000000 }
      - { per: user, rate: 1000000/s, burst: 1000000 }
EOF
"$SLACKGATE_BIN" check "$TMP/slackgate/config.yaml" >/dev/null
RUST_LOG=warn taskset -c "$PROXY_CPU" "$SLACKGATE_BIN" run -c "$TMP/slackgate/config.yaml" \
    --threads "$THREADS" --upgrade-sock "$TMP/slackgate/upgrade.sock" >"$TMP/slackgate/stdout.log" 2>&1 &
SG_PID=$!
PIDS+=("$SG_PID")
wait_port "$SG_PORT" slackgate
for _ in $(seq 1 200); do
    curl -fsS "http://127.0.0.1:$SG_ADMIN/readyz" >/dev/null 2>&1 && break
    sleep 0.05
done

# --- optional second gateway (A/B of two builds in one run) -------------------------------
if [ -n "${SLACKGATE_BIN_B:-}" ]; then
    [ -x "$SLACKGATE_BIN_B" ] || die "missing $SLACKGATE_BIN_B"
    SGB_PORT=$(free_port); SGB_ADMIN=$(free_port)
    mkdir -p "$TMP/slackgate_b"
    cp "$TMP/slackgate/policy.yaml" "$TMP/slackgate_b/policy.yaml"
    sed -e "s|127.0.0.1:$SG_PORT|127.0.0.1:$SGB_PORT|" -e "s|127.0.0.1:$SG_ADMIN|127.0.0.1:$SGB_ADMIN|" \
        -e "s|$TMP/slackgate/audit.log|$TMP/slackgate_b/audit.log|" \
        "$TMP/slackgate/config.yaml" >"$TMP/slackgate_b/config.yaml"
    RUST_LOG=warn taskset -c "$PROXY_CPU" "$SLACKGATE_BIN_B" run -c "$TMP/slackgate_b/config.yaml" \
        --threads "$THREADS" --upgrade-sock "$TMP/slackgate_b/upgrade.sock" >"$TMP/slackgate_b/stdout.log" 2>&1 &
    PIDS+=($!)
    wait_port "$SGB_PORT" slackgate_b
fi

# --- memory: idle keep-alive connections on a fresh gateway -------------------------------
log "slackgate: $IDLE_CONNS idle keep-alive connections (one signed request each)"
IDLE_LINE=$(taskset -c "$CLIENT_CPU" "$BIN/loadgen" idle --addr "127.0.0.1:$SG_PORT" \
    --conns "$IDLE_CONNS" --watch-pid "$SG_PID" --hold 2 | grep '^IDLE')

# --- memory: unfinished max-size heads (what an attacker can pin per connection) -----------
PARTIAL_BYTES=${PARTIAL_BYTES:-16000}
log "slackgate: $IDLE_CONNS connections each holding an unfinished ${PARTIAL_BYTES}-byte head"
PARTIAL_LINE=$(taskset -c "$CLIENT_CPU" "$BIN/loadgen" partial --addr "127.0.0.1:$SG_PORT" \
    --conns "$IDLE_CONNS" --head-bytes "$PARTIAL_BYTES" --watch-pid "$SG_PID" --hold 2 | grep '^PARTIAL')

# --- load ---------------------------------------------------------------------------------
RESULTS=$TMP/results.txt
: >"$RESULTS"
TARGETS=("bot:$BOT_PORT" "nginx:$NGINX_PORT" "haproxy:$HAPROXY_PORT" "slackgate:$SG_PORT")
NAMES=(bot nginx haproxy slackgate)
if [ -n "${SGB_PORT:-}" ]; then
    TARGETS+=("slackgate_b:$SGB_PORT")
    NAMES+=(slackgate_b)
fi
log "load: $RUNS run(s) x ${#TARGETS[@]} targets x (${WARMUP}s warm-up + ${DURATION}s), $CONNS connections, ${BODY_LEN}-byte signed bodies"
for run in $(seq 1 "$RUNS"); do
    for t in "${TARGETS[@]}"; do
        name=${t%%:*}; port=${t##*:}
        line=$(taskset -c "$CLIENT_CPU" "$BIN/loadgen" run --addr "127.0.0.1:$port" \
            --conns "$CONNS" --duration "$DURATION" --warmup "$WARMUP" --body-len "$BODY_LEN" \
            --label "$name" | grep '^RESULT')
        echo "run=$run $line" >>"$RESULTS"
        case "$line" in
            *" non200=0 errors=0 "*) ;;
            *) log "WARNING: $name answered non-200 or failed: $line";;
        esac
    done
done
SG_MEM_AFTER=$(awk '/^VmRSS:|^VmHWM:/ {sub(":", "", $1); printf "%s=%s ", $1, $2}' "/proc/$SG_PID/status")

# --- memory: 1M rate-limit keys, in process ---------------------------------------------
log "in-process: 1M rate-limit keys and 1M replay entries"
MEM_LINES=$(taskset -c "$CLIENT_CPU" "$BIN/memprobe" 1000000 2>/dev/null | grep '^MEM')

# --- report -------------------------------------------------------------------------------
median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) print 0; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
field() { # field LABEL KEY -> median over runs
    grep " label=$1 " "$RESULTS" | tr ' ' '\n' | awk -F= -v k="$2" '$1==k {print $2}' | median
}
echo
echo "slackgate load comparison — $(date -u +%Y-%m-%dT%H:%MZ)"
echo "machine: $NCPU CPU(s), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
echo "nginx $NGINX_VERSION, HAProxy $HAPROXY_VERSION, slackgate $SLACKGATE_BIN (repo at $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'))"
echo "each proxy: $THREADS worker thread(s)/process(es) pinned to CPU $PROXY_CPU; load generator (1 thread) + echo bot (1 thread) pinned to CPU $CLIENT_CPU"
echo "load: $CONNS keep-alive connections, closed loop, ${WARMUP}s warm-up + ${DURATION}s measured, median of $RUNS run(s); every request uniquely signed ($BODY_LEN-byte body)"
echo
printf '%-10s %10s %9s %9s %10s\n' target req/s p50_us p99_us p99.9_us
for name in "${NAMES[@]}"; do
    printf '%-10s %10s %9s %9s %10s\n' "$name" "$(field "$name" rps)" "$(field "$name" p50_us)" \
        "$(field "$name" p99_us)" "$(field "$name" p999_us)"
done
SG=$(field slackgate rps); HA=$(field haproxy rps); NG=$(field nginx rps)
SG99=$(field slackgate p99_us); HA99=$(field haproxy p99_us)
echo
awk -v sg="$SG" -v ha="$HA" -v ng="$NG" -v s99="$SG99" -v h99="$HA99" 'BEGIN {
    printf "slackgate/HAProxy throughput: %.2fx (target >= 1.0x)\n", (ha>0? sg/ha : 0)
    printf "slackgate/nginx   throughput: %.2fx (target >= 0.8x)\n", (ng>0? sg/ng : 0)
    printf "p99 slackgate %d us vs HAProxy %d us (target: <=)\n", s99, h99
}'
if [ -n "${SGB_PORT:-}" ]; then
    awk -v a="$SG" -v b="$(field slackgate_b rps)" 'BEGIN {
        printf "A/B: slackgate_b/slackgate throughput %.3fx (B = %s)\n", (a>0? b/a : 0), ENVIRON["SLACKGATE_BIN_B"] }'
fi
echo
echo "$IDLE_LINE" | awk '{for (i=2;i<=NF;i++) {split($i,kv,"="); v[kv[1]]=kv[2]}
    printf "slackgate, %d idle keep-alive connections (%d answered 200): VmRSS %.1f MiB, VmHWM %.1f MiB (target < 64 MiB); before them %.1f MiB\n",
        v["conns"], v["ok"], v["rss_kib"]/1024, v["hwm_kib"]/1024, v["rss_before_kib"]/1024}'
echo "$PARTIAL_LINE" | awk '{for (i=2;i<=NF;i++) {split($i,kv,"="); v[kv[1]]=kv[2]}
    printf "slackgate, %d connections holding an unfinished %d-byte head (%d still open): VmRSS %.1f MiB (+%.1f MiB, %.1f KiB/conn), VmHWM %.1f MiB\n",
        v["conns"], v["head_bytes"], v["still_open"], v["rss_kib"]/1024, (v["rss_kib"]-v["rss_before_kib"])/1024,
        (v["conns"]>0 ? (v["rss_kib"]-v["rss_before_kib"])/v["conns"] : 0), v["hwm_kib"]/1024}'
echo "slackgate after the load runs: $SG_MEM_AFTER(KiB)"
echo "$MEM_LINES" | awk '{for (i=2;i<=NF;i++) {split($i,kv,"="); v[kv[1]]=kv[2]}
    printf "in-process %s: %d unique keys -> +%.1f MiB RSS (%.0f bytes/key), %.2f s\n",
        v["what"], v["keys"], v["rss_delta_kib"]/1024, v["rss_delta_kib"]*1024/v["keys"], v["secs"]}'
echo
echo "raw results:"
cat "$RESULTS"
