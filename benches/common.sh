# Shared by compare.sh, reload.sh and egress.sh (sourced after `cd` to the repo root, with SCRIPT set to
# the caller's name): CPU placement, the signing secret, log/die, and the tools, installed from
# Debian's packages when missing (apt-get; needs root or sudo).
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

# --- tools -------------------------------------------------------------------------------
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v timeout >/dev/null 2>&1 || missing+=(coreutils)
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]} (apt-get)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
export PATH="$PATH:/usr/sbin:/sbin"
HAPROXY_VERSION=$(haproxy -v | awk 'NR==1 {print $3}')
NGINX_VERSION=$(nginx -v 2>&1 | sed 's|.*nginx/||')
