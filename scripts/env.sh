# Sourced by the other scripts: puts the project's tools on PATH.
TOOLS_DIR="${YP_TOOLS_DIR:-$HOME/.cache/yewdux-persist-tools}"
export PATH="$HOME/.cargo/bin:$TOOLS_DIR/node_modules/binaryen/bin:$PATH"
export CHROMEDRIVER="${CHROMEDRIVER:-/usr/bin/chromedriver}"
