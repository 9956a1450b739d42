# Shared by compare.sh and reload.sh (sourced after `cd` to the repo root, with SCRIPT set to
# the caller's name): CPU placement, the signing secret, log/die, and the tools, installed from
# Debian's packages when missing (apt-get; needs root or sudo).
MAX_SKEW=300
NCPU=$(nproc)
if [ "$NCPU" -ge 2 ]; then
    PROXY_CPU=${PROXY_CPU:-1}
    CLIENT_CPU=${CLIENT_CPU:-0}
else
    PROXY_CPU=${PROXY_CPU:-0}
    CLIENT_CPU=${CLIENT_CPU:-0}
fi
export BENCH_SIGNING_SECRET=${BENCH_SIGNING_SECRET:-8f742231b10e8888abcd99yyyzzz85a5}

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
