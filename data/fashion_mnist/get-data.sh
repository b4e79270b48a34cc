#!/usr/bin/env bash
# Makes sure the trainer can find Fashion-MNIST. When the files are already in one of the places
# it searches, it does nothing. Otherwise it installs Debian's dataset-fashion-mnist package where
# apt-get works, and runs download.sh (into this folder) where it does not.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly NAMES=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)

# True when the directory contains all four files, each compressed or not.
has_data() {
  local directory="$1" name
  [[ -n "$directory" && -d "$directory" ]] || return 1
  for name in "${NAMES[@]}"; do
    [[ -f "$directory/$name.gz" || -f "$directory/$name" ]] || return 1
  done
}

for directory in "${FASHION_MNIST_DIR:-}" "$here" /usr/share/datasets/fashion-mnist; do
  if has_data "$directory"; then
    echo "Fashion-MNIST found in $directory"
    exit 0
  fi
done

if command -v apt-get >/dev/null 2>&1; then
  sudo=()
  if [[ "$(id -u)" -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then sudo=(sudo); fi
  fi
  echo "Installing Debian's dataset-fashion-mnist package"
  if "${sudo[@]}" apt-get update -qq && "${sudo[@]}" apt-get install -y -qq dataset-fashion-mnist; then
    has_data /usr/share/datasets/fashion-mnist && exit 0
  fi
  echo "apt-get could not install dataset-fashion-mnist; downloading the files instead" >&2
fi

exec bash "$here/download.sh" "$here"
