#!/usr/bin/env bash
# The egress door under load: Web API calls (chat.postMessage as slack_sdk sends it, JSON,
# `Authorization: Bearer`) through slackgate's egress listener, against the same calls
# straight to the Slack stand-in, and through nginx injecting a static Authorization header
# (the most a plain proxy does: no bot identity, no method/channel/argument rules, no
# audit), all in one run, targets interleaved.
#
#   benches/egress.sh                  # RUNS=3 DURATION=10 WARMUP=2 CONNS=64 THREADS=1
#   SHAPE=form CONNS=32 RUNS=5 benches/egress.sh   # issue 33's shape: form calls
#                                      # (application/x-www-form-urlencoded), 32 connections
#   SLACKGATE_BIN=/path/a SLACKGATE_BIN_B=/path/b benches/egress.sh   # A/B: adds target
#                                      # slackgate_b, same config, interleaved
#   COUNT=callgrind RUNS=1 CONNS=8 DURATION=5 WARMUP=3 benches/egress.sh   # instructions
#                                      # per call, and where they go (TOP functions)
#   KEEP_CG=DIR COUNT=callgrind ...    # keeps the callgrind dumps in DIR (callgrind_annotate)
#   BUILD=0 ...                        # no cargo build: the release binaries as they are
#
# The stand-in is the testkit's (`slackstandin`, plain HTTP on 127.0.0.1, one thread): every
# target reaches it the same way, so the differences are the proxies' own. slackgate checks
# the key (constant time over every bot), the method, the channel, the denied arguments and
# a rate limit, swaps the key for the token, writes one audit line per call and counts it.
# Prints req/s, p50/p99/p99.9 and the proxy's CPU time per call (all its threads/processes,
# as compare.sh counts it; medians over the runs), the latency slackgate and nginx
# add over the direct calls, slackgate's throughput relative to nginx, and, for every
# slackgate run, that each call loadgen had answered 200 was allowed and audited: the
# run's new audit lines and its new `slackgate_egress_requests_total{reason="allowed"}`
# against loadgen's `ok_all` (warm-up and the calls in flight at the end included).
#
# COUNT=callgrind runs nginx's worker and slackgate (every thread, the audit writer
# included) under `valgrind --tool=callgrind` (benches/common.sh, as compare.sh does) and
# reports user-space instructions per answered call (Ir/call, and without SHA-256
# compression, which valgrind runs in software), then the TOP (default 25) functions of the
# last run by instructions per call, self cost (INCLUSIVE=yes: callees included). req/s
# and latency under callgrind mean nothing.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BODY_LEN=${BODY_LEN:-200}
SHAPE=${SHAPE:-json}
TOP=${TOP:-25}
SCRIPT=egress.sh
# shellcheck source=benches/common.sh
. benches/common.sh
closed_loop_defaults
install_tools
case "$SHAPE" in json|form) ;; *) die "SHAPE=$SHAPE: use json (the default) or form";; esac
count_mode

log "building release binaries (slackgate, loadgen, slackstandin)"
if [ "${BUILD:-1}" = 0 ]; then
    :   # BUILD=0: the binaries in $BIN as they are
elif [ -n "${SLACKGATE_BIN:-}" ]; then
    cargo build --release -q -p slackgate-benches --bins
else
    cargo build --release -q -p slackgate -p slackgate-benches --bins
fi
SLACKGATE_BIN=${SLACKGATE_BIN:-$BIN/slackgate}
for b in "$SLACKGATE_BIN" ${SLACKGATE_BIN_B:+"$SLACKGATE_BIN_B"} "$BIN/loadgen" "$BIN/slackstandin"; do
    [ -x "$b" ] || die "missing $b"
done

TMP=$(mktemp -d /tmp/slackgate-egress.XXXXXX)
PIDS=()
cleanup() {
    exec 7>&- 2>/dev/null || true
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
    cg_keep
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM
[ "$COUNT" != callgrind ] || cg_wrap
ulimit -n 65536 2>/dev/null || true
# The run's own copies: another build into the same target dir cannot swap them mid-run.
mkdir "$TMP/bin"
cp "$BIN/loadgen" "$BIN/slackstandin" "$TMP/bin/"
BIN=$TMP/bin


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
NGINX_PORT=$(free_port)

# --- nginx: static Authorization header, nothing else -------------------------------------
mkdir -p "$TMP/nginx"
cat >"$TMP/nginx/nginx.conf" <<CONF
$(# valgrind's vgdb (callgrind_control) cannot reach a worker that switched to nobody
[ "$COUNT" = callgrind ] && [ "$(id -u)" = 0 ] && echo "user root;")
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
taskset -c "$PROXY_CPU" "${WRAP[@]}" nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" 2>"$TMP/nginx/stderr.log" &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
wait_port "$NGINX_PORT" nginx
# callgrind counts the worker (the master does not answer).
NGINX_WORKERS=$(pgrep -d, -P "$NGINX_PID" || true)
for _ in $(seq 1 "${WAIT_TRIES:-200}"); do [ -n "$NGINX_WORKERS" ] && break; sleep 0.05; NGINX_WORKERS=$(pgrep -d, -P "$NGINX_PID" || true); done
declare -A PORT=() ADMIN=() CG_PIDS=([nginx]=$NGINX_WORKERS) CPU_PIDS=([nginx]=$NGINX_PID,$NGINX_WORKERS)

# --- slackgate with a bot (and the B build, same config) -----------------------------------
export BENCH_GATEWAY_KEY=$KEY BENCH_BOT_TOKEN=$TOKEN
sg_start() { # sg_start NAME BINARY: $TMP/NAME/config.yaml and the gateway, egress on PORT[NAME]
    local name=$1 bin=$2 port admin
    port=$(free_port); admin=$(free_port)
    mkdir -p "$TMP/$name"
    cat >"$TMP/$name/config.yaml" <<CONF
listen:
  - addr: 127.0.0.1:$(free_port)
admin: { addr: 127.0.0.1:$admin }
audit: { path: $TMP/$name/audit.log }
policy: policy.yaml
egress:
  listen: { addr: 127.0.0.1:$port }
  slack_api: http://$SLACK_ADDR/api/
CONF
    { bench_bot; cat <<CONF; } >"$TMP/$name/policy.yaml"
    team: T0BENCH
    methods: [chat.postMessage, chat.update, "reactions.*"]
    channels: [C0BENCH, C0OTHER]
    deny_args: [username, icon_url, icon_emoji]
    rate_limits:
      - { per: method, rate: 1000000/s, burst: 1000000 }
CONF
    "$bin" check "$TMP/$name/config.yaml" >/dev/null
    RUST_LOG=warn taskset -c "$PROXY_CPU" "${WRAP[@]}" "$bin" run -c "$TMP/$name/config.yaml" \
        --threads "$THREADS" --upgrade-sock "$TMP/$name/upgrade.sock" >"$TMP/$name/stdout.log" 2>&1 &
    PIDS+=($!)
    CG_PIDS[$name]=$!
    CPU_PIDS[$name]=$!
    PORT[$name]=$port
    ADMIN[$name]=$admin
    wait_port "$port" "$name"
    wait_ready "$admin"
}
sg_start slackgate "$SLACKGATE_BIN"
SG_NAMES=(slackgate)
if [ -n "${SLACKGATE_BIN_B:-}" ]; then
    sg_start slackgate_b "$SLACKGATE_BIN_B"
    SG_NAMES+=(slackgate_b)
fi

# --- sanity: each target answers ok, and slackgate denies what it must ---------------------
if [ "$SHAPE" = form ]; then
    CT=application/x-www-form-urlencoded; OK_BODY='channel=C0BENCH&text=hi'; DENIED_BODY='channel=C0NOPE&text=hi'
else
    CT='application/json; charset=utf-8'; OK_BODY='{"channel":"C0BENCH","text":"hi"}'; DENIED_BODY='{"channel":"C0NOPE","text":"hi"}'
fi
probe() { curl -fsS "http://127.0.0.1:$1/api/chat.postMessage" -H "Authorization: Bearer $2" \
    -H "Content-Type: $CT" -d "$3"; }
probe "$SLACK_PORT" "$TOKEN" "$OK_BODY" | grep -q '"ok":true' || die "stand-in direct call failed"
probe "$NGINX_PORT" "$KEY" "$OK_BODY" | grep -q '"ok":true' || die "nginx call failed"
for name in "${SG_NAMES[@]}"; do
    probe "${PORT[$name]}" "$KEY" "$OK_BODY" | grep -q '"ok":true' || die "$name call failed"
    probe "${PORT[$name]}" "$KEY" "$DENIED_BODY" | grep -q '"error":"channel_denied"' || die "$name let a denied channel through"
done

# allowed NAME: slackgate's count of allowed chat.postMessage calls (its metrics).
allowed() {
    curl -fsS "http://127.0.0.1:${ADMIN[$1]}/metrics" \
        | awk '/^slackgate_egress_requests_total\{/ && /reason="allowed"/ && /method="chat.postMessage"/ {s += $NF} END {printf "%d", s}'
}
# audited NAME: the allowed calls in its audit trail so far (the writer settles first).
audited() {
    local n m=-1
    for _ in $(seq 1 50); do
        n=$(grep -c '"reason":"allowed"' "$TMP/$1/audit.log" || true)
        [ "$n" = "$m" ] && break
        m=$n; sleep 0.2
    done
    echo "$n"
}

RESULTS=$TMP/results.txt
: >"$RESULTS"
PORT[direct]=$SLACK_PORT; PORT[nginx]=$NGINX_PORT
NAMES=(direct nginx "${SG_NAMES[@]}")
[ -z "$COUNT" ] || NAMES=(nginx "${SG_NAMES[@]}")   # the stand-in is not counted
log "load: $RUNS run(s) x ${#NAMES[@]} targets x (${WARMUP}s warm-up + ${DURATION}s), $CONNS connections, $SHAPE calls"
for run in $(seq 1 "$RUNS"); do
    for name in "${NAMES[@]}"; do
        key=$KEY; [ "$name" = direct ] && key=$TOKEN
        args=(--addr "127.0.0.1:${PORT[$name]}" --path /api/chat.postMessage --egress-key "$key"
            --egress-body "$SHAPE" --conns "$CONNS" --duration "$DURATION" --warmup "$WARMUP"
            --body-len "$BODY_LEN" --label "$name" --cpu-pids "${CPU_PIDS[$name]:-}")
        case "$name" in slackgate*) a0=$(allowed "$name"); l0=$(audited "$name");; esac
        if [ -n "$COUNT" ]; then
            line=$(cg_load "${CG_PIDS[$name]}" "${args[@]}")
            # The measured window's dumps, for the breakdown.
            for p in ${CG_PIDS[$name]//,/ }; do
                cp "$(ls -v "$TMP/cg/cg.$p".* | tail -1)" "$TMP/cg/window.$name.$run.$p"
            done
        else
            line=$(taskset -c "$CLIENT_CPU" "$BIN/loadgen" run "${args[@]}" | grep '^RESULT')
        fi
        case "$name" in
            slackgate*)
                a1=$(allowed "$name"); l1=$(audited "$name")
                line="$line allowed=$((a1 - a0)) audited=$((l1 - l0))";;
        esac
        echo "run=$run $line" >>"$RESULTS"
        case "$line" in
            *" non200=0 errors=0 "*) ;;
            *) log "WARNING: $name answered non-200 or failed: $line";;
        esac
    done
done

field() { grep " label=$1 " "$RESULTS" | tr ' ' '\n' | awk -F= -v k="$2" '$1==k && $2!="-" {print $2}' | median; }
per_run() { grep " label=$1 " "$RESULTS" | tr ' ' '\n' | awk -F= -v k="$2" '$1==k {print $2}' | paste -sd/ -; }
echo
echo "slackgate egress comparison — $(date -u +%Y-%m-%dT%H:%MZ)"
echo "machine: $NCPU CPU(s), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "nginx $NGINX_VERSION, slackgate $SLACKGATE_BIN${SLACKGATE_BIN_B:+, slackgate_b $SLACKGATE_BIN_B} (repo at $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'))"
echo "each proxy: $THREADS worker thread(s) pinned to CPU $PROXY_CPU; load generator + Slack stand-in (1 thread each) on CPU $CLIENT_CPU"
echo "load: $CONNS keep-alive connections, closed loop, ${WARMUP}s warm-up + ${DURATION}s measured, median of $RUNS run(s); chat.postMessage, $SHAPE body ~$BODY_LEN bytes"
[ -z "$COUNT" ] || echo "COUNT=$COUNT: the proxies ran under valgrind; only Ir/call (user-space instructions per answered call) means anything"
echo
printf '%-12s %10s %9s %9s %10s %8s' target req/s p50_us p99_us p99.9_us cpu_us
[ -z "$COUNT" ] || printf ' %9s %10s' Ir/call Ir-SHA256
echo
for name in "${NAMES[@]}"; do
    printf '%-12s %10s %9s %9s %10s %8s' "$name" "$(field "$name" rps)" "$(field "$name" p50_us)" \
        "$(field "$name" p99_us)" "$(field "$name" p999_us)" "$(field "$name" cpu_us)"
    [ -z "$COUNT" ] || printf ' %9s %10s' "$(field "$name" ir_per_req)" "$(field "$name" ir_nosha_per_req)"
    echo
done
echo
if [ -z "$COUNT" ]; then
    awk -v d50="$(field direct p50_us)" -v d99="$(field direct p99_us)" \
        -v n50="$(field nginx p50_us)" -v n99="$(field nginx p99_us)" \
        -v s50="$(field slackgate p50_us)" -v s99="$(field slackgate p99_us)" \
        -v srps="$(field slackgate rps)" -v nrps="$(field nginx rps)" -v drps="$(field direct rps)" 'BEGIN {
        printf "added over direct: nginx p50 +%d us, p99 +%d us; slackgate p50 +%d us, p99 +%d us (target p99 <= +300 us)\n", n50-d50, n99-d99, s50-d50, s99-d99
        printf "slackgate/nginx throughput: %.2fx (target >= 0.9x), p99 %.2fx nginx; slackgate/direct %.2fx, nginx/direct %.2fx\n", (nrps>0? srps/nrps : 0), (n99>0? s99/n99 : 0), (drps>0? srps/drps : 0), (drps>0? nrps/drps : 0)
    }'
    printf 'per run req/s: nginx %s' "$(per_run nginx rps)"
    for name in "${SG_NAMES[@]}"; do printf ', %s %s' "$name" "$(per_run "$name" rps)"; done
    echo
    if [ -n "${SLACKGATE_BIN_B:-}" ]; then
        awk -v a="$(field slackgate rps)" -v b="$(field slackgate_b rps)" -v n="$(field nginx rps)" \
            -v a99="$(field slackgate p99_us)" -v b99="$(field slackgate_b p99_us)" 'BEGIN {
            printf "A/B: slackgate_b/slackgate throughput %.3fx; slackgate_b/nginx %.2fx; p99 %d vs %d us\n", (a>0? b/a : 0), (n>0? b/n : 0), b99, a99 }'
    fi
else
    for name in "${SG_NAMES[@]}"; do
        awk -v s="$(field "$name" ir_nosha_per_req)" -v n="$(field nginx ir_nosha_per_req)" -v name="$name" 'BEGIN {
            printf "instructions per call without SHA-256: %s %d, nginx %d (%.2fx nginx)\n", name, s, n, (n>0? s/n : 0) }'
    done
fi
# Every call slackgate answered 200 was allowed and audited: the run's new `allowed` count and
# audit lines against every 200 loadgen had (warm-up and the tail included).
for name in "${SG_NAMES[@]}"; do
    grep " label=$name " "$RESULTS" | tr ' ' '\n' | awk -F= -v name="$name" '
        $1 == "run" {runs++} $1 == "ok_all" {ok += $2} $1 == "allowed" {al += $2} $1 == "audited" {au += $2}
        END {printf "%s: %d calls answered 200 over %d run(s); %d allowed (metrics), %d audited (audit lines): %s\n",
            name, ok, runs, al, au, (ok == al && ok == au ? "every call allowed and audited" : "MISMATCH")}'
done
# items FILE,FILE CALLS: the door's items, callees included, instructions per call.
items() {
    # shellcheck disable=SC2086 # the files are words
    (cd / && callgrind_annotate --inclusive=yes --threshold=100 --show-percs=no --auto=no ${1//,/ } 2>/dev/null) \
        | awk -v calls="$2" '
            BEGIN {
                n = split("key lookup (BotTable::by_key)|slackgate_policy::bots::BotTable::by_key;" \
                    "argument reader (read_call)|slackgate_slack::webapi::read::read_call;" \
                    "decision, reader and key lookup included (decide_call)|slackgate_guard::egress::decide_call;" \
                    "rules after the key (judge)|slackgate_guard::egress::judge::judge;" \
                    "method name (canonical_method)|slackgate_slack::methods::canonical_method;" \
                    "bot rate limits (take_limits)|slackgate_guard::egress::rate_limits::take_limits;" \
                    "head of the call copied (CallHead::of)|slackgate_proxy::egress::call::CallHead::of::{{closure}};" \
                    "upstream head writer (SlackClient::head)|slackgate_proxy::net::slack_client::SlackClient::head;" \
                    "exchange with Slack (Conn::exchange)|slackgate_proxy::net::client::Conn::exchange::{{closure}};" \
                    "Slack answer ok/error read (serde_json from_trait)|serde_json::de::from_trait;" \
                    "answer relayed (Answer::relayed)|slackgate_proxy::egress::call::Answer::relayed;" \
                    "answer writer (answer_bytes)|slackgate_proxy::net::front::answer_bytes;" \
                    "record: audit line + metrics (EgressApp::record)|slackgate_proxy::egress::door::EgressApp::record;" \
                    "metric lookups (with_label_values)|prometheus::vec::MetricVec<T>::with_label_values", it, ";")
                for (i = 1; i <= n; i++) {split(it[i], kv, "|"); label[kv[2]] = kv[1]; order[i] = kv[2]}
            }
            # A function as a whole is the line that names its object; the lines of its code
            # inlined from other files (no object) are parts of it.
            /^ *[0-9][0-9,]* / && NF >= 2 && / \[[^]]*\]$/ {
                ir = $1; gsub(",", "", ir); $1 = ""; sub(/ \[[^]]*\]$/, ""); sub(/^ *[^:]*:/, "")
                if ($0 in label) sum[$0] += ir
            }
            END {for (i = 1; i <= n; i++) printf "%10.0f  %s\n", sum[order[i]] / calls, label[order[i]]}'
}
if [ -n "$COUNT" ]; then
    for name in "${SG_NAMES[@]}"; do
        files=$(ls "$TMP/cg/window.$name.$RUNS".* | paste -sd, -)
        echo
        echo "$name, run $RUNS: the door's items, callees included, instructions per call"
        items "$files" "$(grep "^run=$RUNS RESULT label=$name " "$RESULTS" | tr ' ' '\n' | awk -F= '$1=="ok" {print $2}')"
    done
    for name in nginx "${SG_NAMES[@]}"; do
        files=$(ls "$TMP/cg/window.$name.$RUNS".* | paste -sd, -)
        echo
        echo "$name, run $RUNS: the $TOP functions with the most instructions per call ($([ "${INCLUSIVE:-no}" = yes ] && echo "callees included" || echo "self cost"))"
        cg_top "$files" "$(grep "^run=$RUNS RESULT label=$name " "$RESULTS" | tr ' ' '\n' | awk -F= '$1=="ok" {print $2}')" "$TOP"
    done
fi
echo
echo "raw results:"
cat "$RESULTS"
