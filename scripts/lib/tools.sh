# shellcheck shell=bash
# Cached installs of the third-party tools the API checks run (sourced by scripts/*).
#
# CI clones the repository afresh for every run while ~/.cache/agentry/ survives, so every
# install lives there, in a directory named after the hash of the file that pins it: a pin
# change installs beside the old one, an unchanged pin costs nothing. A lock file serialises
# two scripts installing the same thing at once.

TOOLS_CACHE="${AGENTRY_TOOLS_CACHE:-${HOME:-/root}/.cache/agentry}"
# npm's download cache: `npm ci` in a fresh clone then needs no network.
export npm_config_cache="$TOOLS_CACHE/npm/cache"
export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false

# The first 12 hex digits of the SHA-256 of the given files.
pins_key() { cat "$@" | sha256sum | cut -c1-12; }

# Prints the path of a virtualenv holding scripts/requirements-checks.txt exactly.
python_tools() {
    local requirements venv
    requirements="$(dirname "${BASH_SOURCE[0]}")/../requirements-checks.txt"
    venv="$TOOLS_CACHE/venv-checks-$(pins_key "$requirements")"
    mkdir -p "$TOOLS_CACHE"
    (
        flock 9
        if [[ ! -e $venv/.installed ]]; then
            rm -rf "$venv"
            python3 -m venv "$venv" >&2
            "$venv/bin/pip" install -q --disable-pip-version-check --no-deps -r "$requirements" >&2
            touch "$venv/.installed"
        fi
    ) 9>"$venv.lock"
    printf '%s\n' "$venv"
}

# Prints the path of a node_modules parent holding the npm project in directory $1
# (package.json + package-lock.json), installed with `npm ci`.
node_tools() {
    local project=$1 prefix
    prefix="$TOOLS_CACHE/npm/$(basename "$project")-$(pins_key "$project/package.json" "$project/package-lock.json")"
    mkdir -p "$TOOLS_CACHE/npm"
    (
        flock 9
        if [[ ! -e $prefix/.installed ]]; then
            rm -rf "$prefix"
            mkdir -p "$prefix"
            cp "$project/package.json" "$project/package-lock.json" "$prefix/"
            (cd "$prefix" && npm ci --prefer-offline --no-progress >&2)
            touch "$prefix/.installed"
        fi
    ) 9>"$prefix.lock"
    printf '%s\n' "$prefix"
}

# Prints the path of a virtualenv holding scripts/requirements-stripe.txt exactly (Stripe's
# Python library, for the webhook signature tests).
stripe_python() {
    local requirements venv
    requirements="$(dirname "${BASH_SOURCE[0]}")/../requirements-stripe.txt"
    venv="$TOOLS_CACHE/venv-stripe-$(pins_key "$requirements")"
    mkdir -p "$TOOLS_CACHE"
    (
        flock 9
        if [[ ! -e $venv/.installed ]]; then
            rm -rf "$venv"
            python3 -m venv "$venv" >&2
            "$venv/bin/pip" install -q --disable-pip-version-check --no-deps -r "$requirements" >&2
            touch "$venv/.installed"
        fi
    ) 9>"$venv.lock"
    printf '%s\n' "$venv"
}
