#!/usr/bin/env bash
# End-to-end load comparison of slackgate against the bot alone, nginx (plain reverse
# proxy, no checks) and HAProxy (the closest equivalent of slackgate's checks), in one run.
#
#   benches/compare.sh                 # RUNS=3 DURATION=10 WARMUP=2 CONNS=64 THREADS=1
#   SLACKGATE_BIN=/path/to/slackgate benches/compare.sh   # a gateway built elsewhere
#   SLACKGATE_BIN_B=/path/to/other benches/compare.sh     # A/B: adds target slackgate_b,
#                                                         # same config, interleaved
#   MODE=tls benches/compare.sh        # TLS termination: nginx, HAProxy and slackgate with
#                                      # the same certificates (KEYS="ecdsa rsa"), in three
#                                      # shapes (SHAPES="keepalive resume full"), ~11 min
#   MODE=tls RUNS=1 DURATION=2 WARMUP=1 benches/compare.sh   # smoke test, ~1 min
#   SKIP_BUILD=1 ...                   # use the release binaries as they are (no cargo build)
#   COUNT=callgrind RUNS=1 CONNS=8 DURATION=5 benches/compare.sh       # instructions per
#   COUNT=callgrind MODE=tls RUNS=1 CONNS=8 DURATION=5 benches/compare.sh  # request instead
#   KEEP_CG=DIR COUNT=callgrind ...    # keeps the callgrind dumps in DIR (callgrind_annotate)
#
# COUNT=callgrind runs every proxy under `valgrind --tool=callgrind` and reports the
# user-space instructions each one executed per answered request (column Ir/req): all
# threads of slackgate (audit writer included), nginx's worker, HAProxy's process. The
# counters are dumped (and so zeroed) at the end of the warm-up and again at the end of the
# measured window, while the load runs. Unlike req/s this repeats exactly whatever else the
# machine does; it leaves out the kernel (the sends and receives) and valgrind hides
# SHA-NI and AVX-512 from all three alike. req/s and latency under callgrind mean nothing.
#
# TLS mode: an ECDSA P-256 and an RSA 2048 self-signed certificate for localhost /
# 127.0.0.1 are generated with the openssl CLI into the run's scratch directory (removed on
# exit; no key is ever kept). Each proxy serves both on two more TLS listeners of the same
# process (still 1 worker, same pinning), with its own defaults for sessions: nginx
# `ssl_session_cache shared:SSL:10m` + tickets (its default), HAProxy's cache + tickets,
# slackgate's. The load generator speaks TLS with rustls (TLS 1.3 here, X25519,
# AES-256-GCM, ALPN http/1.1; printed per run). Shapes: `keepalive` = CONNS keep-alive
# connections (steady state); `full` = a new connection per request, no resumption (one
# full handshake per request); `resume` = a new connection per request resuming a session
# (rustls's client store; `resumed=` counts how many did). The bot row is left out (it
# has no TLS). Memory probes run in HTTP mode only.
# Key exchange (issue 33): every target is measured with a classical client (X25519, P-256,
# P-384; nginx and HAProxy here run Debian's OpenSSL, which has no ML-KEM). KX_EXTRA (default
# `hybrid`) adds slackgate rows with other clients of the load generator's `--kx`: `hybrid`
# (X25519MLKEM768 first: what browsers and OpenSSL 3.5 send), `p384-first` (P-384 listed
# first: slackgate asks it for X25519 by HelloRetryRequest; `hrr=` counts them). The report
# prints what the hybrid costs over X25519 per handshake. KX_EXTRA= (empty) leaves them out.
#
# Installs nginx and haproxy from Debian packages if missing (apt-get; needs root or sudo),
# builds slackgate and the bench binaries in release mode, starts everything on 127.0.0.1
# only, runs a fixed-duration closed-loop load against each target RUNS times (targets
# interleaved), prints req/s, p50/p99/p99.9 and the proxy's CPU time per request (all its
# threads/processes, from /proc/PID/task/*/schedstat over the measured window: a figure
# that other load on the machine changes far less than req/s), medians over the runs, and
# the ratios, then
# measures slackgate's RSS with IDLE_CONNS idle keep-alive connections and the in-process
# memory of 1M rate-limit keys. Every process it starts is stopped on exit.
#
# CPU placement (the machine has few cores, shared with the load generator): the proxy under
# test runs pinned to PROXY_CPU with THREADS worker threads; the load generator and the echo
# bot share CLIENT_CPU. Override with PROXY_CPU=... CLIENT_CPU=... (taskset -c lists).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BODY_LEN=${BODY_LEN:-1024}
IDLE_CONNS=${IDLE_CONNS:-1000}
MODE=${MODE:-http}
KEYS=${KEYS:-ecdsa rsa}
SHAPES=${SHAPES:-keepalive resume full}
KX_EXTRA=${KX_EXTRA-hybrid}
SCRIPT=compare.sh
# shellcheck source=benches/common.sh
. benches/common.sh
closed_loop_defaults
install_tools
case "$MODE" in
    http|tls) ;;
    *) die "MODE=$MODE: use MODE=http (the default) or MODE=tls";;
esac
if [ "$MODE" = tls ]; then
    command -v openssl >/dev/null 2>&1 || die "MODE=tls needs the openssl CLI to generate the certificates (apt-get install openssl)"
    for k in $KEYS; do case "$k" in ecdsa|rsa) ;; *) die "KEYS: $k is not ecdsa or rsa";; esac; done
    for sh in $SHAPES; do case "$sh" in keepalive|resume|full) ;; *) die "SHAPES: $sh is not keepalive, resume or full";; esac; done
fi
count_mode
case "$HAPROXY_VERSION" in
    1.*|2.[0-5]|2.[0-5].*) die "HAProxy $HAPROXY_VERSION found; the hmac converter needs 2.6+ (apt-cache policy haproxy)";;
esac

# --- build -------------------------------------------------------------------------------
if [ -n "${SKIP_BUILD:-}" ]; then
    log "SKIP_BUILD: using the release binaries as they are in $BIN"
elif [ -n "${SLACKGATE_BIN:-}" ]; then
    log "building release binaries (loadgen, echobot, memprobe)"
    # A/B runs of a gateway built elsewhere (e.g. a branch with a proxy change).
    cargo build --release -q -p slackgate-benches --bins
else
    log "building release binaries (slackgate, loadgen, echobot, memprobe)"
    cargo build --release -q -p slackgate -p slackgate-benches --bins
fi
SLACKGATE_BIN=${SLACKGATE_BIN:-$BIN/slackgate}
for b in "$SLACKGATE_BIN" "$BIN/loadgen" "$BIN/echobot" "$BIN/memprobe" "$BIN/signspeed"; do [ -x "$b" ] || die "missing $b"; done

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
    # KEEP_CG=DIR keeps the callgrind dumps (for callgrind_annotate) before the scratch goes.
    cg_keep
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM
[ "$COUNT" != callgrind ] || cg_wrap
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

BOT_PORT=$(free_port); NGINX_PORT=$(free_port); HAPROXY_PORT=$(free_port)
SG_PORT=$(free_port); SG_ADMIN=$(free_port)
# TLS listeners: TLS_PORT[target/key]; CPU_PIDS[target]: the processes whose CPU is counted.
declare -A TLS_PORT=() CPU_PIDS=()

# --- TLS: certificates made for this run only ----------------------------------------------
if [ "$MODE" = tls ]; then
    CERTS=$TMP/certs
    mkdir -m 700 "$CERTS"
    for k in ecdsa rsa; do
        case "$k" in
            ecdsa) newkey=(-newkey ec -pkeyopt ec_paramgen_curve:P-256);;
            rsa) newkey=(-newkey rsa:2048);;
        esac
        openssl req -x509 "${newkey[@]}" -nodes -days 2 -subj /CN=localhost \
            -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
            -keyout "$CERTS/$k.key" -out "$CERTS/$k.crt" 2>/dev/null \
            || die "openssl could not generate the $k certificate"
        cat "$CERTS/$k.crt" "$CERTS/$k.key" >"$CERTS/$k.pem"   # HAProxy wants both in one file
        for t in nginx haproxy slackgate slackgate_b; do TLS_PORT[$t/$k]=$(free_port); done
    done
    # The one operation a full handshake is bound by, on the proxies' CPU before any load:
    # the server's signature with slackgate's stack (rustls + aws-lc-rs, on this run's keys) and
    # with OpenSSL's (`openssl speed`, the library nginx and HAProxy sign with).
    log "handshake signatures on CPU $PROXY_CPU: rustls/aws-lc-rs (signspeed) and OpenSSL (openssl speed)"
    SIGN_LINES=$(taskset -c "$PROXY_CPU" "$BIN/signspeed" "$CERTS/ecdsa.key" "$CERTS/rsa.key")
    OPENSSL_SPEED=$(taskset -c "$PROXY_CPU" openssl speed -seconds 2 ecdsap256 rsa2048 2>/dev/null \
        | awk '/^rsa 2048 bits/ {r = $6} /^ *256 bits ecdsa \(nistp256\)/ {e = $7}
            END {printf "ecdsa_signs_per_s=%s rsa_signs_per_s=%s", e, r}')
fi

# --- upstream bot -------------------------------------------------------------------------
taskset -c "$CLIENT_CPU" "$BIN/echobot" "127.0.0.1:$BOT_PORT" 1 2>"$TMP/echobot.log" &
PIDS+=($!)
wait_port "$BOT_PORT" echobot

# --- nginx: plain reverse proxy, no checks ---------------------------------------------
mkdir -p "$TMP/nginx"
cat >"$TMP/nginx/nginx.conf" <<EOF
$(# valgrind's vgdb (callgrind_control) cannot reach a worker that switched to nobody
[ "$COUNT" = callgrind ] && [ "$(id -u)" = 0 ] && echo "user root;")
$(nginx_head warn bot "127.0.0.1:$BOT_PORT")
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
$(nginx_pass bot)
        }
    }
$(if [ "$MODE" = tls ]; then for k in ecdsa rsa; do cat <<TLS
    server {
        listen 127.0.0.1:${TLS_PORT[nginx/$k]} ssl;
        ssl_certificate $CERTS/$k.crt;
        ssl_certificate_key $CERTS/$k.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        location / {
$(nginx_pass bot)
        }
    }
TLS
done; fi)
}
EOF
taskset -c "$PROXY_CPU" "${WRAP[@]}" nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" 2>"$TMP/nginx/stderr.log" &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
wait_port "$NGINX_PORT" nginx
# The master and its worker(s); callgrind counts the workers (an idle master would not answer).
NGINX_WORKERS=$(pgrep -d, -P "$NGINX_PID" || true)
for _ in $(seq 1 "${WAIT_TRIES:-200}"); do [ -n "$NGINX_WORKERS" ] && break; sleep 0.05; NGINX_WORKERS=$(pgrep -d, -P "$NGINX_PID" || true); done
CPU_PIDS[nginx]=$NGINX_PID,$NGINX_WORKERS
declare -A CG_PIDS=([nginx]=$NGINX_WORKERS)

# --- HAProxy with the equivalent checks ------------------------------------------------
SLACK_SECRET_B64=$(printf '%s' "$BENCH_SIGNING_SECRET" | base64 -w0)
HAPROXY_ENV=(LISTEN="127.0.0.1:$HAPROXY_PORT" UPSTREAM="127.0.0.1:$BOT_PORT" THREADS="$THREADS"
    SLACK_SECRET_B64="$SLACK_SECRET_B64" MAX_SKEW="$MAX_SKEW")
if [ "$MODE" = tls ]; then
    HAPROXY_ENV+=(TLS_ECDSA_LISTEN="127.0.0.1:${TLS_PORT[haproxy/ecdsa]}" TLS_ECDSA_PEM="$CERTS/ecdsa.pem"
        TLS_RSA_LISTEN="127.0.0.1:${TLS_PORT[haproxy/rsa]}" TLS_RSA_PEM="$CERTS/rsa.pem")
fi
env "${HAPROXY_ENV[@]}" haproxy -c -q -f "$ROOT/benches/conf/haproxy.cfg" \
    || die "haproxy rejected benches/conf/haproxy.cfg (hmac/secure_memcmp need HAProxy 2.6+ with OpenSSL)"
env "${HAPROXY_ENV[@]}" taskset -c "$PROXY_CPU" "${WRAP[@]}" haproxy -db -f "$ROOT/benches/conf/haproxy.cfg" \
    >"$TMP/haproxy.log" 2>&1 &
PIDS+=($!)
CPU_PIDS[haproxy]=$!
wait_port "$HAPROXY_PORT" haproxy

# --- slackgate with a full policy --------------------------------------------------------
sg_config() { # sg_config NAME PORT ADMIN_PORT: $TMP/NAME/config.yaml (+ TLS listeners in TLS mode)
    mkdir -p "$TMP/$1"
    {
        echo "listen:"
        echo "  - addr: 127.0.0.1:$2"
        if [ "$MODE" = tls ]; then
            for k in ecdsa rsa; do
                echo "  - addr: 127.0.0.1:${TLS_PORT[$1/$k]}"
                echo "    tls: { cert: $CERTS/$k.crt, key: $CERTS/$k.key }"
            done
        fi
        sg_config_rest "$3" "$TMP/$1" policy.yaml
    } >"$TMP/$1/config.yaml"
}
sg_config slackgate "$SG_PORT" "$SG_ADMIN"
bench_policy "$BOT_PORT" >"$TMP/slackgate/policy.yaml"
"$SLACKGATE_BIN" check "$TMP/slackgate/config.yaml" >/dev/null
RUST_LOG=warn taskset -c "$PROXY_CPU" "${WRAP[@]}" "$SLACKGATE_BIN" run -c "$TMP/slackgate/config.yaml" \
    --threads "$THREADS" --upgrade-sock "$TMP/slackgate/upgrade.sock" >"$TMP/slackgate/stdout.log" 2>&1 &
SG_PID=$!
PIDS+=("$SG_PID")
CPU_PIDS[slackgate]=$SG_PID
wait_port "$SG_PORT" slackgate
wait_ready "$SG_ADMIN"

# --- optional second gateway (A/B of two builds in one run) -------------------------------
if [ -n "${SLACKGATE_BIN_B:-}" ]; then
    [ -x "$SLACKGATE_BIN_B" ] || die "missing $SLACKGATE_BIN_B"
    SGB_PORT=$(free_port); SGB_ADMIN=$(free_port)
    sg_config slackgate_b "$SGB_PORT" "$SGB_ADMIN"
    cp "$TMP/slackgate/policy.yaml" "$TMP/slackgate_b/policy.yaml"
    RUST_LOG=warn taskset -c "$PROXY_CPU" "${WRAP[@]}" "$SLACKGATE_BIN_B" run -c "$TMP/slackgate_b/config.yaml" \
        --threads "$THREADS" --upgrade-sock "$TMP/slackgate_b/upgrade.sock" >"$TMP/slackgate_b/stdout.log" 2>&1 &
    PIDS+=($!)
    CPU_PIDS[slackgate_b]=$!
    wait_port "$SGB_PORT" slackgate_b
fi

# --- memory (HTTP mode): idle keep-alive connections on a fresh gateway ----------------------
if [ "$MODE" = http ]; then
    log "slackgate: $IDLE_CONNS idle keep-alive connections (one signed request each)"
    IDLE_LINE=$(taskset -c "$CLIENT_CPU" "$BIN/loadgen" idle --addr "127.0.0.1:$SG_PORT" \
        --conns "$IDLE_CONNS" --watch-pid "$SG_PID" --hold 2 | grep '^IDLE')

    # Unfinished max-size heads (what an attacker can pin per connection).
    PARTIAL_BYTES=${PARTIAL_BYTES:-16000}
    log "slackgate: $IDLE_CONNS connections each holding an unfinished ${PARTIAL_BYTES}-byte head"
    PARTIAL_LINE=$(taskset -c "$CLIENT_CPU" "$BIN/loadgen" partial --addr "127.0.0.1:$SG_PORT" \
        --conns "$IDLE_CONNS" --head-bytes "$PARTIAL_BYTES" --watch-pid "$SG_PID" --hold 2 | grep '^PARTIAL')
fi

# --- load ---------------------------------------------------------------------------------
RESULTS=$TMP/results.txt
: >"$RESULTS"
NAMES=(nginx haproxy slackgate)
[ -n "${SGB_PORT:-}" ] && NAMES+=(slackgate_b)
declare -A PORT=([bot]=$BOT_PORT [nginx]=$NGINX_PORT [haproxy]=$HAPROXY_PORT [slackgate]=$SG_PORT [slackgate_b]=${SGB_PORT:-})
load() { # load LABEL PORT CPU_PIDS [loadgen options...]: one measured run into $RESULTS
    local label=$1 port=$2 pids=$3 line
    shift 3
    if [ "$COUNT" = callgrind ]; then
        line=$(cg_load "${CG_PIDS[${label%%/*}]:-$pids}" --addr "127.0.0.1:$port" \
            --conns "$CONNS" --duration "$DURATION" --warmup "$WARMUP" --body-len "$BODY_LEN" \
            --label "$label" --cpu-pids "$pids" "$@")
    else
        line=$(taskset -c "$CLIENT_CPU" "$BIN/loadgen" run --addr "127.0.0.1:$port" \
            --conns "$CONNS" --duration "$DURATION" --warmup "$WARMUP" --body-len "$BODY_LEN" \
            --label "$label" --cpu-pids "$pids" "$@" | grep '^RESULT')
    fi
    echo "run=$run $line" >>"$RESULTS"
    case "$line" in
        *" non200=0 errors=0 "*) ;;
        *) log "WARNING: $label answered non-200 or failed: $line";;
    esac
}
shape_opts() { # shape_opts SHAPE -> loadgen options
    case "$1" in
        keepalive) echo "--new-conn 0 --resume 1";;
        resume) echo "--new-conn 1 --resume 1";;
        full) echo "--new-conn 1 --resume 0";;
    esac
}
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
if [ "$MODE" = http ]; then
    [ -n "$COUNT" ] || NAMES=(bot "${NAMES[@]}")   # the bot is not counted
    log "load: $RUNS run(s) x ${#NAMES[@]} targets x (${WARMUP}s warm-up + ${DURATION}s), $CONNS connections, ${BODY_LEN}-byte signed bodies"
    for run in $(seq 1 "$RUNS"); do
        for name in "${NAMES[@]}"; do
            load "$name" "${PORT[$name]}" "${CPU_PIDS[$name]:-}"
        done
    done
else
    # shellcheck disable=SC2086 # word lists
    log "TLS load: $RUNS run(s) x keys ($KEYS) x shapes ($SHAPES) x ${#NAMES[@]} targets x (${WARMUP}s warm-up + ${DURATION}s), $CONNS connections"
    for run in $(seq 1 "$RUNS"); do
        for k in $KEYS; do
            for sh in $SHAPES; do
                for name in "${NAMES[@]}"; do
                    # shellcheck disable=SC2046 # the options are words
                    load "$name/$k/$sh" "${TLS_PORT[$name/$k]}" "${CPU_PIDS[$name]}" \
                        --tls "$CERTS/$k.crt" $(shape_opts "$sh") --kx x25519
                done
                for kx in $KX_EXTRA; do
                    # shellcheck disable=SC2046 # the options are words
                    load "slackgate+$kx/$k/$sh" "${TLS_PORT[slackgate/$k]}" "${CPU_PIDS[slackgate]}" \
                        --tls "$CERTS/$k.crt" $(shape_opts "$sh") --kx "$kx"
                done
            done
        done
    done
fi
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
SG_MEM_AFTER=$(awk '/^VmRSS:|^VmHWM:/ {sub(":", "", $1); printf "%s=%s ", $1, $2}' "/proc/$SG_PID/status")

# --- memory: 1M rate-limit keys, in process ---------------------------------------------
if [ "$MODE" = http ]; then
    log "in-process: 1M rate-limit keys and 1M replay entries"
    MEM_LINES=$(taskset -c "$CLIENT_CPU" "$BIN/memprobe" 1000000 2>/dev/null | grep '^MEM')
fi

# --- report -------------------------------------------------------------------------------
field() { # field LABEL KEY -> median over runs
    grep " label=$1 " "$RESULTS" | tr ' ' '\n' | awk -F= -v k="$2" '$1==k && $2!="-" {print $2}' | median
}
per_run() { # per_run LABEL KEY -> a/b/c
    grep " label=$1 " "$RESULTS" | tr ' ' '\n' | awk -F= -v k="$2" '$1==k {print $2}' | paste -sd/ -
}
ratios() { # ratios PREFIX SUFFIX: slackgate against nginx and HAProxy, same run
    local s=$1 e=$2
    awk -v sg="$(field "${s}slackgate$e" rps)" -v ng="$(field "${s}nginx$e" rps)" -v ha="$(field "${s}haproxy$e" rps)" \
        -v sgc="$(field "${s}slackgate$e" cpu_us)" -v ngc="$(field "${s}nginx$e" cpu_us)" -v hac="$(field "${s}haproxy$e" cpu_us)" \
        -v s99="$(field "${s}slackgate$e" p99_us)" -v n99="$(field "${s}nginx$e" p99_us)" -v h99="$(field "${s}haproxy$e" p99_us)" 'BEGIN {
        printf "  slackgate/nginx req/s %.2fx (target >= 0.9x), slackgate/HAProxy %.2fx", (ng>0? sg/ng : 0), (ha>0? sg/ha : 0)
        printf "; CPU per request slackgate %.2f us, nginx %.2f us (%.2fx), HAProxy %.2f us (%.2fx)", sgc, ngc, (sgc>0? ngc/sgc : 0), hac, (sgc>0? hac/sgc : 0)
        printf "; p99 slackgate %d us vs nginx %d us, HAProxy %d us\n", s99, n99, h99
    }'
    printf '  per run req/s: slackgate %s, nginx %s, HAProxy %s\n' "$(per_run "${s}slackgate$e" rps)" \
        "$(per_run "${s}nginx$e" rps)" "$(per_run "${s}haproxy$e" rps)"
    if [ -n "$COUNT" ]; then
        awk -v sg="$(field "${s}slackgate$e" ir_nosha_per_req)" -v ng="$(field "${s}nginx$e" ir_nosha_per_req)" \
            -v ha="$(field "${s}haproxy$e" ir_nosha_per_req)" 'BEGIN {
            printf "  instructions per request without SHA-256: slackgate %d, nginx %d (%.2fx slackgate), HAProxy %d (%.2fx)\n", sg, ng, (sg>0? ng/sg : 0), ha, (sg>0? ha/sg : 0) }'
    fi
}
row() { # row LABEL NAME
    printf '%-12s %10s %9s %9s %10s %8s %6s %8s %9s' "$2" "$(field "$1" rps)" "$(field "$1" p50_us)" \
        "$(field "$1" p99_us)" "$(field "$1" p999_us)" "$(field "$1" cpu_us)" "$(field "$1" user_share)" \
        "$(field "$1" hs_per_s)" "$(field "$1" resumed)"
    [ -z "$COUNT" ] || printf ' %9s %10s' "$(field "$1" ir_per_req)" "$(field "$1" ir_nosha_per_req)"
    echo
}
header() {
    printf '%-12s %10s %9s %9s %10s %8s %6s %8s %9s' target req/s p50_us p99_us p99.9_us cpu_us user hs/s resumed
    [ -z "$COUNT" ] || printf ' %9s %10s' Ir/req Ir-SHA256
    echo
}
echo
echo "slackgate load comparison ($MODE) — $(date -u +%Y-%m-%dT%H:%MZ)"
echo "machine: $NCPU CPU(s), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo); load average $LOAD_BEFORE before the load, $LOAD_AFTER after"
echo "nginx $NGINX_VERSION, HAProxy $HAPROXY_VERSION, slackgate $SLACKGATE_BIN (repo at $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'))"
echo "each proxy: $THREADS worker thread(s)/process(es) pinned to CPU $PROXY_CPU; load generator (1 thread) + echo bot (1 thread) pinned to CPU $CLIENT_CPU"
[ -z "$COUNT" ] || echo "COUNT=$COUNT: every proxy ran under valgrind; only Ir/req (user-space instructions per answered request) means anything; Ir-SHA256 leaves out SHA-256 compression (software under valgrind)"
echo "load: $CONNS connections, closed loop, ${WARMUP}s warm-up + ${DURATION}s measured, median of $RUNS run(s); every request uniquely signed ($BODY_LEN-byte body); cpu_us = the proxy's CPU time per answered request, user = the share of it in user space (the rest is the kernel's)"
echo
if [ "$MODE" = http ]; then
    header
    for name in "${NAMES[@]}"; do row "$name" "$name"; done
    echo
    ratios "" ""
else
    echo "TLS: $(grep -o ' tls=[^ ]*' "$RESULTS" | sort | uniq -c | awk '{printf "%s%s (%d runs)", (NR>1? ", " : ""), substr($2, 5), $1}')"
    # Signatures per second on the proxies' CPU, rustls/aws-lc-rs against OpenSSL.
    printf '%s\n%s\n' "$SIGN_LINES" "$OPENSSL_SPEED" | awk '
        /^SIGN/ {for (i = 2; i <= NF; i++) {split($i, kv, "="); v[kv[1]] = kv[2]}
            k = (v["key"] ~ /^rsa/ ? "rsa" : "ecdsa"); sg[k] = v["signs_per_s"]; scheme[k] = v["scheme"]}
        /^ecdsa_signs_per_s/ {for (i = 1; i <= NF; i++) {split($i, kv, "="); o[substr(kv[1], 1, index(kv[1], "_") - 1)] = kv[2]}}
        END {for (k in sg) printf "handshake signature, %s (%s): rustls/aws-lc-rs %d/s (%.1f us), OpenSSL %d/s (%.1f us); aws-lc-rs/OpenSSL %.2fx\n",
            k, scheme[k], sg[k], (sg[k] > 0 ? 1e6 / sg[k] : 0), o[k], (o[k] > 0 ? 1e6 / o[k] : 0), (o[k] > 0 ? sg[k] / o[k] : 0)}'
    for k in $KEYS; do
        for sh in $SHAPES; do
            echo
            echo "== $k, $sh ($(case "$sh" in keepalive) echo "$CONNS keep-alive connections";; resume) echo "a new connection per request, session resumed";; full) echo "a new connection per request, full handshake";; esac))"
            header
            for name in "${NAMES[@]}"; do row "$name/$k/$sh" "$name"; done
            for kx in $KX_EXTRA; do row "slackgate+$kx/$k/$sh" "sg+$kx"; done
            ratios "" "/$k/$sh"
            for kx in $KX_EXTRA; do
                awk -v kx="$kx" -v c="$(field "slackgate/$k/$sh" cpu_us)" -v p="$(field "slackgate+$kx/$k/$sh" cpu_us)" \
                    -v r="$(field "slackgate/$k/$sh" rps)" -v q="$(field "slackgate+$kx/$k/$sh" rps)" \
                    -v n="$(field "nginx/$k/$sh" rps)" -v hrr="$(field "slackgate+$kx/$k/$sh" hrr)" 'BEGIN {
                    printf "  slackgate with a %s client: CPU per request %.2f us vs %.2f us with X25519 (%+.2f us), req/s %.2fx X25519'"'"'s, %.2fx nginx (classical); HelloRetryRequests %s\n",
                        kx, p, c, p - c, (r > 0 ? q / r : 0), (n > 0 ? q / n : 0), hrr }'
            done
        done
    done
fi
if [ -n "${SGB_PORT:-}" ]; then
    if [ "$MODE" = http ]; then suffixes=(""); else suffixes=(); for k in $KEYS; do for sh in $SHAPES; do suffixes+=("/$k/$sh"); done; done; fi
    for e in "${suffixes[@]}"; do
        awk -v a="$(field "slackgate$e" rps)" -v b="$(field "slackgate_b$e" rps)" -v ac="$(field "slackgate$e" cpu_us)" -v bc="$(field "slackgate_b$e" cpu_us)" -v e="$e" 'BEGIN {
            printf "A/B%s: slackgate_b/slackgate throughput %.3fx, CPU per request %.2f vs %.2f us (B = %s)\n", e, (a>0? b/a : 0), bc, ac, ENVIRON["SLACKGATE_BIN_B"] }'
    done
fi
echo
if [ "$MODE" = http ]; then
    echo "$IDLE_LINE" | awk '{for (i=2;i<=NF;i++) {split($i,kv,"="); v[kv[1]]=kv[2]}
        printf "slackgate, %d idle keep-alive connections (%d answered 200): VmRSS %.1f MiB, VmHWM %.1f MiB (target < 64 MiB); before them %.1f MiB\n",
            v["conns"], v["ok"], v["rss_kib"]/1024, v["hwm_kib"]/1024, v["rss_before_kib"]/1024}'
    echo "$PARTIAL_LINE" | awk '{for (i=2;i<=NF;i++) {split($i,kv,"="); v[kv[1]]=kv[2]}
        printf "slackgate, %d connections holding an unfinished %d-byte head (%d still open): VmRSS %.1f MiB (+%.1f MiB, %.1f KiB/conn), VmHWM %.1f MiB\n",
            v["conns"], v["head_bytes"], v["still_open"], v["rss_kib"]/1024, (v["rss_kib"]-v["rss_before_kib"])/1024,
            (v["conns"]>0 ? (v["rss_kib"]-v["rss_before_kib"])/v["conns"] : 0), v["hwm_kib"]/1024}'
    echo "$MEM_LINES" | awk '{for (i=2;i<=NF;i++) {split($i,kv,"="); v[kv[1]]=kv[2]}
        printf "in-process %s: %d unique keys -> +%.1f MiB RSS (%.0f bytes/key), %.2f s\n",
            v["what"], v["keys"], v["rss_delta_kib"]/1024, v["rss_delta_kib"]*1024/v["keys"], v["secs"]}'
fi
echo "slackgate after the load runs: $SG_MEM_AFTER(KiB)"
echo
echo "raw results:"
cat "$RESULTS"
