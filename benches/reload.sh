#!/usr/bin/env bash
# The keep-alive reload drill of issue 19 against slackgate, nginx and HAProxy.
#
#   benches/reload.sh                      # RUNS=5 CONNS=16 BEFORE=2 AFTER=7
#   RUNS=1 benches/reload.sh               # quicker
#   TARGETS="nginx haproxy" benches/reload.sh
#   SLACKGATE_BIN=/path/to/slackgate benches/reload.sh   # a gateway built elsewhere
#   SKIP_BUILD=1 benches/reload.sh         # use the release binaries as they are (no cargo build)
#   SLACKGATE_BIN_B=/path/to/other benches/reload.sh     # adds target slackgate_b-upgrade
#                                          # (and slackgate_b-drain if named in TARGETS)
#
# Each run: CONNS keep-alive connections of unique signed Slack events (reloaddrill: a
# connection is reused request after request and replaced only on `Connection: close` or a
# failure; short idle pauses), BEFORE seconds of load, one reload/upgrade, AFTER seconds of
# load, then it stops. Counted per run: requests written but never answered ("lost"), non-200
# answers, p99.9 latency from the start of the reload to the end of the run. Targets, all on
# 127.0.0.1 behind the same echo bot, interleaved run by run:
#
#   slackgate-upgrade  binary upgrade as the README says: `run --upgrade --upgrade-sock S` next
#                      to the running process, wait until it listens on S (/proc/net/unix),
#                      `kill -QUIT` the old process (a fresh old process per run)
#   slackgate-drain    SIGTERM to a single process; the clients open no new connections from
#                      then on (a Kubernetes endpoint removal), so each connection is used until
#                      the gateway closes it
#   nginx              `nginx -s reload` (SIGHUP to the master), compare.sh's plain reverse proxy
#   haproxy            a new `haproxy -sf OLDPID` with benches/conf/haproxy.cfg (compare.sh's)
#   haproxy-icor       the same plus `option idle-close-on-response`
#
# Installs nginx and haproxy with apt-get if missing (root or sudo), uses release builds
# (reuses the release slackgate when it is newer than the sources), pins like compare.sh
# (the proxy, 1 worker, on PROXY_CPU; the drill client and the echo bot on CLIENT_CPU), and
# stops every process it started on exit.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
RUNS=${RUNS:-5}
CONNS=${CONNS:-16}
BEFORE=${BEFORE:-2}
AFTER=${AFTER:-7}
BODY_LEN=${BODY_LEN:-1024}
TARGETS=${TARGETS:-"slackgate-upgrade slackgate-drain nginx haproxy haproxy-icor${SLACKGATE_BIN_B:+ slackgate_b-upgrade}"}
THREADS=1
SCRIPT=reload.sh
# shellcheck source=benches/common.sh
. benches/common.sh
install_tools

# --- build --------------------------------------------------------------------------------------
if [ -n "${SKIP_BUILD:-}" ]; then
    log "SKIP_BUILD: using the binaries in $BIN as they are"
elif [ -n "${SLACKGATE_BIN:-}" ]; then
    log "building reloaddrill and echobot (release); gateway: $SLACKGATE_BIN"
    nice cargo build --release -q -p slackgate-benches --bins
else
    # cargo reuses the release slackgate when it is newer than its sources.
    log "building slackgate, reloaddrill and echobot (release; nothing to do if up to date)"
    nice cargo build --release -q -p slackgate -p slackgate-benches --bins
fi
SLACKGATE_BIN=${SLACKGATE_BIN:-$BIN/slackgate}
for b in "$SLACKGATE_BIN" "$BIN/reloaddrill" "$BIN/echobot"; do [ -x "$b" ] || die "missing $b"; done

# --- scratch dir, ports, cleanup (as compare.sh) --------------------------------------------------
TMP=$(mktemp -d /tmp/slackgate-reload.XXXXXX)
PIDS=()
cleanup() {
    # Processes started by the reload helpers (new slackgate / HAProxy processes) too.
    for f in "$TMP"/*.pids "$TMP"/*/*.pid; do
        [ -f "$f" ] || continue
        while read -r p; do PIDS+=("$p"); done <"$f"
    done
    for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] && kill "$p" 2>/dev/null || true
    done
    sleep 0.2
    for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true


# The binaries are copied so that a rebuild during the runs (other work on this machine)
# cannot swap the gateway under an upgrade.
cp "$SLACKGATE_BIN" "$TMP/slackgate"
if [ -n "${SLACKGATE_BIN_B:-}" ]; then
    [ -x "$SLACKGATE_BIN_B" ] || die "missing $SLACKGATE_BIN_B"
    cp "$SLACKGATE_BIN_B" "$TMP/slackgate_b"
fi
BOT_PORT=$(free_port); NGINX_PORT=$(free_port); HAPROXY_PORT=$(free_port)

# --- upstream bot ---------------------------------------------------------------------------------
taskset -c "$CLIENT_CPU" "$BIN/echobot" "127.0.0.1:$BOT_PORT" 1 2>"$TMP/echobot.log" &
PIDS+=($!)
wait_port "$BOT_PORT" echobot

want() { case " $TARGETS " in *" $1 "*) return 0;; *) return 1;; esac; }

# --- nginx: compare.sh's plain reverse proxy, keep-alive to clients (default 75 s) --------------
if want nginx; then
    mkdir -p "$TMP/nginx"
    cat >"$TMP/nginx/nginx.conf" <<EOF
$(nginx_head notice bot "127.0.0.1:$BOT_PORT")
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
$(nginx_pass bot)
        }
    }
}
EOF
    taskset -c "$PROXY_CPU" nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" 2>"$TMP/nginx/stderr.log" &
    PIDS+=($!)
    wait_port "$NGINX_PORT" nginx
    cat >"$TMP/reload-nginx.sh" <<EOF
#!/usr/bin/env bash
exec nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -s reload
EOF
fi

# --- HAProxy: compare.sh's configuration, one process; reload = new process with -sf -----------
# haproxy-icor: the same with `option idle-close-on-response` (HAProxy 2.6+): on soft-stop an
# idle keep-alive connection is not closed at once but kept until its next request, which is
# answered with `Connection: close` (what HAProxy did by default before 2.4).
# setup_haproxy NAME PORT CFG
setup_haproxy() {
    local name=$1 port=$2 cfg=$3
    cat >"$TMP/$name-env" <<EOF
export LISTEN=127.0.0.1:$port UPSTREAM=127.0.0.1:$BOT_PORT THREADS=$THREADS
export SLACK_SECRET_B64=$SLACK_SECRET_B64 MAX_SKEW=$MAX_SKEW
EOF
    echo "$port" >"$TMP/$name.port"
    # shellcheck disable=SC1090
    (. "$TMP/$name-env"; haproxy -c -q -f "$cfg") \
        || die "haproxy rejected $cfg (needs HAProxy 2.6+ with OpenSSL)"
    # shellcheck disable=SC1090
    (. "$TMP/$name-env"; exec taskset -c "$PROXY_CPU" haproxy -db -f "$cfg" >>"$TMP/$name.log" 2>&1 </dev/null) &
    echo $! >"$TMP/$name.current"
    echo $! >>"$TMP/$name.pids"
    wait_port "$port" "$name"
    cat >"$TMP/reload-$name.sh" <<EOF
#!/usr/bin/env bash
# The documented reload: a new process binds the same listeners, then soft-stops the old one.
set -eu
. "$TMP/$name-env"
old=\$(cat "$TMP/$name.current")
taskset -c "$PROXY_CPU" haproxy -db -f "$cfg" -sf "\$old" >>"$TMP/$name.log" 2>&1 </dev/null &
echo \$! >"$TMP/$name.current"
echo \$! >>"$TMP/$name.pids"
EOF
}
SLACK_SECRET_B64=$(printf '%s' "$BENCH_SIGNING_SECRET" | base64 -w0)
if want haproxy; then
    setup_haproxy haproxy "$HAPROXY_PORT" "$ROOT/benches/conf/haproxy.cfg"
fi
if want haproxy-icor; then
    sed 's/^defaults$/defaults\n    option idle-close-on-response/' "$ROOT/benches/conf/haproxy.cfg" >"$TMP/haproxy-icor.cfg"
    grep -q '^    option idle-close-on-response' "$TMP/haproxy-icor.cfg" || die "could not derive haproxy-icor.cfg"
    setup_haproxy haproxy-icor "$(free_port)" "$TMP/haproxy-icor.cfg"
fi

# --- slackgate: compare.sh's full policy; a fresh process (and port) per run --------------------
bench_policy "$BOT_PORT" >"$TMP/policy.yaml"
# The README's upgrade sequence, with the new process pinned like the old one. The wait is the
# README's one-liner, bounded (the new process gives up by itself after about 6 s).
cat >"$TMP/reload-upgrade.sh" <<EOF
#!/usr/bin/env bash
set -eu
D=\$1 SG=\$2
export S=\$D/upgrade.sock
taskset -c "$PROXY_CPU" "\$SG" run -c "\$D/config.yaml" --threads $THREADS --upgrade --upgrade-sock "\$S" \
    >>"\$D/new.log" 2>&1 </dev/null &
echo \$! >"\$D/new.pid"
timeout 10 bash -c 'until grep -q " \$S\\\$" /proc/net/unix; do sleep 0.1; done'
kill -QUIT "\$(cat "\$D/old.pid")"
EOF
cat >"$TMP/reload-drain.sh" <<EOF
#!/usr/bin/env bash
exec kill -TERM "\$(cat "\$1/old.pid")"
EOF
chmod +x "$TMP"/reload-*.sh

# start_slackgate DIR BINARY: a gateway on fresh ports (SG_PORT).
start_slackgate() {
    local d=$1 sg=$2 port admin
    port=$(free_port); admin=$(free_port)
    SG_PORT=$port
    mkdir -p "$d"
    {
        printf 'listen:\n  - addr: 127.0.0.1:%s\n' "$port"
        sg_config_rest "$admin" "$d" "$TMP/policy.yaml"
    } >"$d/config.yaml"
    taskset -c "$PROXY_CPU" "$sg" run -c "$d/config.yaml" --threads "$THREADS" \
        --upgrade-sock "$d/upgrade.sock" >>"$d/old.log" 2>&1 </dev/null &
    echo $! >"$d/old.pid"
    wait_port "$port" slackgate
    wait_ready "$admin"
}
# stop_slackgate DIR: the measurement is over; stop what is left of the run's processes.
stop_slackgate() {
    local d=$1 f p
    for f in "$d/old.pid" "$d/new.pid"; do
        [ -f "$f" ] || continue
        p=$(cat "$f")
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true   # a child of this shell (the old process)
        for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.02; done
    done
}

# --- the runs ------------------------------------------------------------------------------------
RESULTS=$TMP/results.txt
: >"$RESULTS"
drill() { # drill LABEL RUN PORT RELOAD_CMD [--drain]
    local label=$1 run=$2 port=$3 cmd=$4
    shift 4
    taskset -c "$CLIENT_CPU" "$BIN/reloaddrill" --addr "127.0.0.1:$port" --label "$label" --run "$run" \
        --conns "$CONNS" --before "$BEFORE" --after "$AFTER" --body-len "$BODY_LEN" \
        --reload-cmd "$cmd" "$@" 2>>"$TMP/drill.log" | grep '^RELOAD' >>"$RESULTS" \
        || log "WARNING: no result from $label run $run (see below)"
    tail -n 1 "$RESULTS" >&2
}
log "$RUNS run(s) x [$TARGETS]: $CONNS keep-alive connections, ${BEFORE}s load, one reload, ${AFTER}s load"
for run in $(seq 1 "$RUNS"); do
    for t in $TARGETS; do
        case "$t" in
            slackgate-upgrade|slackgate-drain|slackgate_b-upgrade|slackgate_b-drain)
                d=$TMP/$t-$run
                sg=$TMP/${t%-*}         # slackgate or slackgate_b
                [ -x "$sg" ] || die "$t needs SLACKGATE_BIN_B"
                start_slackgate "$d" "$sg"
                extra=()
                case "$t" in *-drain) extra=(--drain);; esac
                drill "$t" "$run" "$SG_PORT" "$TMP/reload-${t#*-}.sh $d $sg" "${extra[@]}"
                case "$t" in *-upgrade)
                    kill -0 "$(cat "$d/new.pid")" 2>/dev/null \
                        || log "WARNING: the new process is not running (logs in $d)";;
                esac
                stop_slackgate "$d"
                ;;
            nginx)
                drill nginx "$run" "$NGINX_PORT" "$TMP/reload-nginx.sh"
                [ "$(grep -c reconfiguring "$TMP/nginx/error.log")" -ge "$run" ] \
                    || log "WARNING: nginx did not log a reload (see $TMP/nginx/error.log)"
                ;;
            haproxy|haproxy-icor)
                drill "$t" "$run" "$(cat "$TMP/$t.port")" "$TMP/reload-$t.sh"
                kill -0 "$(cat "$TMP/$t.current")" 2>/dev/null || die "the new HAProxy process ($t) died"
                ;;
            *) die "unknown target $t";;
        esac
        sleep 0.5
    done
done

# --- report --------------------------------------------------------------------------------------
values() { # values LABEL KEY -> one value per run
    grep " label=$1 " "$RESULTS" | tr ' ' '\n' | awk -F= -v k="$2" '$1==k {print $2}'
}
per_run() { values "$1" "$2" | paste -sd/ -; }
echo
echo "keep-alive reload drill — $(date -u +%Y-%m-%dT%H:%MZ)"
echo "machine: $NCPU CPU(s), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
echo "nginx $NGINX_VERSION, HAProxy $HAPROXY_VERSION, slackgate $SLACKGATE_BIN${SLACKGATE_BIN_B:+, slackgate_b $SLACKGATE_BIN_B} (repo at $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'))"
echo "each proxy: $THREADS worker pinned to CPU $PROXY_CPU; drill client (1 thread) + echo bot (1 thread) on CPU $CLIENT_CPU"
echo "load: $CONNS keep-alive connections, unique signed ${BODY_LEN}-byte events, an idle pause (20-140 ms) after about one request in seven; ${BEFORE}s, reload, ${AFTER}s; $RUNS run(s), targets interleaved"
echo "p99.9 and window = requests sent from the start of the reload command to the end of the run"
echo
printf '%-18s %-16s %-12s %-34s %9s %9s %s\n' target lost/run non200/run "p99.9 us/run" p99.9_med max_med "requests/run (window)"
for t in $TARGETS; do
    printf '%-18s %-16s %-12s %-34s %9s %9s %s (%s)\n' "$t" "$(per_run "$t" lost)" "$(per_run "$t" non200)" \
        "$(per_run "$t" p999_us)" "$(values "$t" p999_us | median -)" "$(values "$t" max_us | median -)" \
        "$(per_run "$t" requests)" "$(per_run "$t" window_requests)"
done
echo
echo "lost requests (ms after the reload command started):"
grep -h "lost request" "$TMP/drill.log" | sed 's/^/  /' || echo "  none"
echo
echo "raw results:"
cat "$RESULTS"
