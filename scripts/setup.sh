#!/usr/bin/env bash
# Set up nadkit and its book: a virtual environment with the locked packages (requirements.lock:
# torch 2.14.1 / torchvision 0.29.1 and the book, test and timm extras, exact versions with
# hashes), the package, Fashion-MNIST, the book's offline assets (MathJax, the widget manager and
# Vega from the npm registry) and Chromium for the browser test. Idempotent, and quick when done.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=.venv
as_root_with_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }
apt_updated=
apt_install() {
    [ -n "$apt_updated" ] || { apt-get update -qq >/dev/null; apt_updated=1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# 1. Python packages: the locked environment (requirements.lock, exact versions with hashes,
# written by `make lock`), then nadkit itself from this checkout without its dependencies
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
want=$(cat requirements.lock pyproject.toml scripts/setup.sh | sha1sum | cut -d' ' -f1)
if [ "$(cat "$VENV/.nadkit-setup" 2>/dev/null)" != "$want" ]; then
    echo "setup: installing the locked environment (requirements.lock, hashes checked) and nadkit into $VENV"
    pip_quiet() {  # pip, less this machine's notes on its missing local indexes; fails as pip does
        local log rc=0
        log=$(mktemp)
        "$VENV/bin/pip" "$@" >"$log" 2>&1 || rc=$?
        grep -v "^WARNING: Location" "$log" >&2 || true
        rm -f "$log"
        return "$rc"
    }
    pip_quiet install -q --disable-pip-version-check --require-hashes -r requirements.lock
    pip_quiet install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
    # nadbook (the book's machinery, not part of the nadkit wheel) sits beside book/: this checkout
    # on the venv's path, so that the chapters (run from book/ by jupyter-book, nbmake, papermill)
    # and `python -m nadbook.book` import it
    "$VENV/bin/python" -c 'import site, sys; open(site.getsitepackages()[0] + "/nadbook.pth", "w").write(sys.argv[1] + "\n")' "$PWD"
    "$VENV/bin/pip" check --disable-pip-version-check
    echo "$want" > "$VENV/.nadkit-setup"
fi

# 2. Fashion-MNIST
has_data() { "$VENV/bin/python" -c "from nadkit.data import fashion_mnist; fashion_mnist('test')" 2>/dev/null; }
if ! has_data; then
    if as_root_with_apt; then
        echo "setup: installing the Debian package dataset-fashion-mnist"
        apt_install dataset-fashion-mnist
    else
        echo "setup: downloading Fashion-MNIST with torchvision into data/fashion-mnist"
        "$VENV/bin/python" -c "from torchvision.datasets import FashionMNIST; FashionMNIST('data/fashion-mnist', download=True)" \
            || true
    fi
    has_data || { echo "setup: Fashion-MNIST is missing: install dataset-fashion-mnist (as root) or put its four IDX files in data/fashion-mnist/" >&2; exit 1; }
fi

# 3. The book's offline assets, from the npm registry (pinned in package-lock.json)
# (the widget manager asks for its icon fonts relative to the page, from one of two folders
# depending on which of its scripts resolves them first: book_extra/ puts them in both)
if [ ! -f book_assets/.stamp ] || [ package-lock.json -nt book_assets/.stamp ]; then
    echo "setup: installing MathJax, the Jupyter widget manager and Vega into book_assets/"
    npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null
    rm -rf book_assets book_extra && mkdir -p book_assets/widgets
    cp -r node_modules/mathjax/es5 book_assets/mathjax
    cp -r node_modules/@jupyter-widgets/html-manager/dist/. book_assets/widgets/
    cp node_modules/requirejs/require.js book_assets/widgets/require.js
    mkdir -p book_assets/vega
    cp node_modules/vega/build/vega.min.js node_modules/vega-lite/build/vega-lite.min.js \
        node_modules/vega-embed/build/vega-embed.min.js book_assets/vega/
    for fonts in book_extra/book/@jupyter-widgets book_extra/book/@jupyter-widgets/html-manager/dist; do
        mkdir -p "$fonts"
        cp node_modules/@jupyter-widgets/html-manager/dist/*.{woff,woff2,ttf,eot,svg} "$fonts"/
    done
    touch book_assets/.stamp
fi

# 4. A browser for the browser test
if ! command -v chromium >/dev/null; then
    if as_root_with_apt; then
        echo "setup: installing the Debian package chromium"
        apt_install chromium
    else
        echo "setup: no chromium: the browser test will be skipped (install the Debian package chromium)"
    fi
fi
echo "setup: ready ($("$VENV/bin/python" -c 'import torch, nadkit; print("torch", torch.__version__, "nadkit", nadkit.__version__)'))"
