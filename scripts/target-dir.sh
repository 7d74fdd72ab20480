# Sourced by the scripts that run built binaries: sets $target_dir to cargo's target
# directory as cargo itself resolves it (CARGO_TARGET_DIR, .cargo/config.toml's
# build.target-dir, or ./target), so the scripts run what `cargo build` just built.
#
# `cargo metadata` prints one line of JSON; target_directory is a plain path string. A path
# holding a double quote or backslash is escaped in JSON and is refused rather than guessed.
target_dir=$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"\\]*\)".*/\1/p')
if [[ -z $target_dir ]]; then
    echo "$0: cannot read the target directory from \`cargo metadata\`" >&2
    exit 1
fi
