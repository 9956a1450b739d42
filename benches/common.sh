# Shared by the bench scripts (sourced after `cd` to the repo root, with ROOT and SCRIPT set
# to the repo root and the caller's name): CPU placement, the signing secret, log/die, ports,
# the pieces of configuration they share (nginx, slackgate, the bench policies), and the
# tools, installed from Debian's packages when missing (apt-get; needs root or sudo) by
# `install_tools`.
MAX_SKEW=300
NCPU=$(nproc)
# Release binaries: cargo's target dir, honouring CARGO_TARGET_DIR (relative to the repo root).
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
if [ "$NCPU" -ge 2 ]; then
    PROXY_CPU=${PROXY_CPU:-1}
    CLIENT_CPU=${CLIENT_CPU:-0}
else
    PROXY_CPU=${PROXY_CPU:-0}
    CLIENT_CPU=${CLIENT_CPU:-0}
fi
export BENCH_SIGNING_SECRET=${BENCH_SIGNING_SECRET:-8f742231b10e8888abcd99yyyzzz85a5}

# A free port on loopback (bind :0 and release it; every server binds 127.0.0.1 only),
# and waiting until something listens on one ($TMP: the caller's scratch dir, for the logs).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
        || echo $(( 20000 + RANDOM % 20000 ))
}
wait_port() {
    local port=$1 name=$2
    for _ in $(seq 1 "${WAIT_TRIES:-200}"); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    die "$name did not listen on 127.0.0.1:$port (logs in $TMP)"
}

log() { printf '== %s\n' "$*" >&2; }
die() { printf '%s: %s\n' "$SCRIPT" "$*" >&2; exit 1; }

# closed_loop_defaults: the closed-loop load of compare.sh and egress.sh, unless the
# environment says otherwise: RUNS runs of WARMUP + DURATION seconds on CONNS connections,
# THREADS worker threads for each proxy.
closed_loop_defaults() {
    RUNS=${RUNS:-3}
    DURATION=${DURATION:-10}
    WARMUP=${WARMUP:-2}
    CONNS=${CONNS:-64}
    THREADS=${THREADS:-1}
}

# wait_ready ADMIN_PORT: until slackgate's admin listener says it is ready (bounded).
wait_ready() {
    for _ in $(seq 1 "${WAIT_TRIES:-200}"); do
        curl -fsS "http://127.0.0.1:$1/readyz" >/dev/null 2>&1 && break
        sleep 0.05
    done
}

# median [NONE]: the median of the numbers on stdin, one a line (NONE, default 0, for none).
median() {
    sort -n | awk -v none="${1:-0}" '{a[NR]=$1} END {if (NR==0) print none; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'
}

# --- configuration ---------------------------------------------------------------------------
# nginx_head LOG_LEVEL UPSTREAM ADDR: an nginx.conf up to its server blocks: THREADS workers in
# the foreground, their files in $TMP/nginx, keep-alive to the clients and to upstream UPSTREAM
# (at ADDR). The caller writes the server blocks and the closing brace.
nginx_head() {
    cat <<EOF
worker_processes $THREADS;
daemon off;
master_process on;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log $1;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    keepalive_requests 1000000;
    upstream $2 { server $3; keepalive 256; keepalive_requests 1000000; }
EOF
}
# nginx_pass UPSTREAM: the body of a `location` that passes to UPSTREAM on kept connections.
nginx_pass() {
    cat <<EOF
            proxy_pass http://$1;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
EOF
}

# sg_config_rest ADMIN_PORT DIR POLICY: a slackgate config after its listeners: the admin
# listener, no trusted proxies, the bench limits, the audit log in DIR, the policy file.
sg_config_rest() {
    cat <<EOF
admin: { addr: 127.0.0.1:$1 }
trusted_proxies: []
limits: { max_body_bytes: 65536, max_clock_skew: ${MAX_SKEW}s }
audit: { path: $2/audit.log }
policy: $3
EOF
}

# bench_policy BOT_PORT: the inbound policy compare.sh and reload.sh measure: every check on
# (signature, source IPs, teams, users and groups, events, rate limits that never trip).
bench_policy() {
    cat <<EOF
version: 1
apps:
  bench:
    api_app_id: A0HELPDESK
    signing_secrets:
      - { id: current, env: BENCH_SIGNING_SECRET }
upstreams:
  bot: { targets: [127.0.0.1:$1] }
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
}

# bench_bot: an egress-only policy up to bot `bench`'s credentials (env BENCH_GATEWAY_KEY and
# BENCH_BOT_TOKEN); the caller writes the bot's other keys.
bench_bot() {
    cat <<EOF
version: 1
routes: []
bots:
  bench:
    key: { env: BENCH_GATEWAY_KEY }
    token: { env: BENCH_BOT_TOKEN }
EOF
}

# --- instruction counts (COUNT=callgrind) ----------------------------------------------------
# count_mode: COUNT (unset, or callgrind: instructions instead of req/s; then valgrind must
# be there) and WRAP, empty until cg_wrap.
count_mode() {
    COUNT=${COUNT:-}
    WRAP=()
    case "$COUNT" in
        "") ;;
        callgrind) cg_require;;
        *) die "COUNT=$COUNT: use COUNT=callgrind or leave it unset";;
    esac
}
# cg_require: valgrind and callgrind_control are there (else die); the proxies start ~50x
# slower under valgrind, so waiting for their ports takes longer.
cg_require() {
    command -v valgrind >/dev/null 2>&1 && command -v callgrind_control >/dev/null 2>&1 \
        || die "COUNT=callgrind needs valgrind (apt-get install valgrind)"
    WAIT_TRIES=1200
}
# cg_wrap: WRAP, the prefix that runs a proxy under callgrind, its dumps in $TMP/cg.
cg_wrap() {
    mkdir -p "$TMP/cg"
    WRAP=(valgrind -q --tool=callgrind --trace-children=yes --dump-instr=no --collect-jumps=no
        --compress-strings=no --compress-pos=no "--callgrind-out-file=$TMP/cg/cg.%p")
}
# cg_keep: with KEEP_CG=DIR, copies the dumps there (for callgrind_annotate); for cleanup.
cg_keep() {
    if [ -n "${KEEP_CG:-}" ] && [ -d "$TMP/cg" ]; then cp -r "$TMP/cg/." "$KEEP_CG/" || true; fi
}
# cg_dump PID,PID: dumps (and zeroes) their callgrind counters; prints "IR SHA256_IR".
cg_dump() {
    local p total=0 sha=0 f
    for p in ${1//,/ }; do
        callgrind_control -d "$p" >/dev/null 2>&1 || die "callgrind_control -d $p failed"
        f=$(ls -v "$TMP/cg/cg.$p".* 2>/dev/null | tail -1)
        [ -n "$f" ] || die "no callgrind dump for $p in $TMP/cg"
        total=$(( total + $(awk '/^(summary|totals):/ {print $2; exit}' "$f") ))
        # The self cost of SHA-256 compression functions (sha2's, ring's, OpenSSL's): valgrind
        # hides SHA-NI, so software SHA-256 would weigh far more here than on the machine.
        sha=$(( sha + $(awk '/^fn=/ {in_sha = ($0 ~ /sha256|compress256/)} /^calls=/ {skip = 1; next}
            /^[0-9+*-]/ {if (skip) {skip = 0; next} if (in_sha) s += $2} END {printf "%d", s}' "$f") ))
    done
    echo "$total $sha"
}
# cg_load PID,PID LOADGEN_ARGS...: one loadgen run with the counters of PIDS dumped at the
# end of its warm-up (WARMUP) and of its measured window (DURATION); prints its RESULT line
# with ir_per_req and ir_nosha_per_req (instructions per answered request, without SHA-256
# compression) appended. The measured window's dumps stay in $TMP/cg as cg.PID.N.
cg_load() {
    local cg=$1 lg ir line
    shift
    taskset -c "$CLIENT_CPU" "$BIN/loadgen" run "$@" >"$TMP/loadgen.out" &
    lg=$!
    sleep "$WARMUP"; cg_dump "$cg" >/dev/null
    sleep "$DURATION"; ir=$(cg_dump "$cg")
    wait "$lg"
    line=$(grep '^RESULT' "$TMP/loadgen.out")
    echo "$line $(awk -v ir="$ir" -v l="$line" 'BEGIN { n = split(l, f, " "); for (i = 1; i <= n; i++) if (f[i] ~ /^ok=/) ok = substr(f[i], 4)
        split(ir, c, " "); if (ok > 0) printf "ir_per_req=%.0f ir_nosha_per_req=%.0f", c[1] / ok, (c[1] - c[2]) / ok; else printf "ir_per_req=0 ir_nosha_per_req=0" }')"
}
# cg_top FILE,FILE CALLS N: the N functions with the most instructions in the dumps, per
# call (CALLS answered calls): self cost, and (with INCLUSIVE=yes) callees included; a
# function's lines from inlined code of other files are added together, and the threads'
# entry points (whose self cost callgrind_annotate gives as the whole) are left out.
cg_top() {
    local files=${1//,/ } calls=$2 n=$3
    # shellcheck disable=SC2086 # the files are words
    (cd / && callgrind_annotate --inclusive="${INCLUSIVE:-no}" --threshold=100 --show-percs=no --auto=no $files 2>/dev/null) \
        | awk -v calls="$calls" '
            /PROGRAM TOTALS/ {total = $1; gsub(",", "", total); next}
            /^ *[0-9][0-9,]* / && NF >= 2 {
                ir = $1; gsub(",", "", ir); $1 = ""; sub(/^ +/, "")
                sub(/ \[[^]]*\]$/, ""); sub(/^[^:]*:/, "")
                if (ir + 0 >= total + 0) next
                sum[$0] += ir
            }
            END {for (f in sum) printf "%10.0f  %s\n", sum[f] / calls, f}' \
        | sort -rn | awk -v n="$n" 'NR <= n'
}

# --- tools -------------------------------------------------------------------------------
# install_tools: nginx, HAProxy, taskset, curl and timeout, from Debian's packages when
# missing; sets NGINX_VERSION and HAPROXY_VERSION.
install_tools() {
    local sudo="" missing=()
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
    command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
    command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
    command -v curl >/dev/null 2>&1 || missing+=(curl)
    command -v timeout >/dev/null 2>&1 || missing+=(coreutils)
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing ${missing[*]} (apt-get)"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    export PATH="$PATH:/usr/sbin:/sbin"
    HAPROXY_VERSION=$(haproxy -v | awk 'NR==1 {print $3}')
    NGINX_VERSION=$(nginx -v 2>&1 | sed 's|.*nginx/||')
}
