#!/usr/bin/env bash
# Downloads the four Fashion-MNIST files (gzip-compressed IDX) and verifies the MD5 of each
# decompressed file against the checksums published with the data set.
#
# Usage: bash download.sh [--check] [DIRECTORY]
#   DIRECTORY  where the files go; defaults to the directory of this script.
#   --check    only verify the files already in DIRECTORY, download nothing.
#
# A file that is already present and valid is kept. A present file that fails verification is
# removed and downloaded again (with --check it is only reported). A downloaded file that fails
# verification is removed, and the script exits with status 1.
set -euo pipefail

# The data set's official download location. It is served over plain HTTP only, so the MD5
# checks below are what guard against a damaged or altered download.
readonly BASE_URL="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com"

# File name and MD5 of its decompressed content.
readonly FILES=(
  "train-images-idx3-ubyte.gz f4a8712d7a061bf5bd6d2ca38dc4d50a"
  "train-labels-idx1-ubyte.gz 9018921c3c673c538a1fc5bad174d6f9"
  "t10k-images-idx3-ubyte.gz 8181f5470baa50b63fa0f6fddb340f0a"
  "t10k-labels-idx1-ubyte.gz 15d484375f8d13e6eb1aabb0c3f46965"
)

check_only=false
directory=""
for argument in "$@"; do
  case "$argument" in
    --check) check_only=true ;;
    -h | --help)
      sed -n '2,11s/^# \{0,1\}//p' "$0"
      exit 0
      ;;
    -*)
      echo "download.sh: unknown option '$argument', see --help" >&2
      exit 2
      ;;
    *)
      if [[ -n "$directory" ]]; then
        echo "download.sh: more than one directory given ('$directory', '$argument')" >&2
        exit 2
      fi
      directory="$argument"
      ;;
  esac
done
if [[ -z "$directory" ]]; then
  directory="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
fi
if [[ ! -d "$directory" ]]; then
  echo "download.sh: directory '$directory' not found, create it first" >&2
  exit 2
fi

# Prints the MD5 of standard input as 32 hex digits (md5sum on Linux, md5 on macOS).
md5_of_stdin() {
  if command -v md5sum >/dev/null 2>&1; then
    md5sum | cut -d ' ' -f 1
  elif command -v md5 >/dev/null 2>&1; then
    md5 -q
  else
    echo "download.sh: neither md5sum nor md5 found, install coreutils" >&2
    return 1
  fi
}

# Succeeds when FILE decompresses and its decompressed content has the MD5 EXPECTED.
verify() {
  local file="$1" expected="$2" actual
  actual="$(gzip -dc -- "$file" | md5_of_stdin)" || return 1
  [[ "$actual" == "$expected" ]]
}

# Downloads URL to OUTPUT, through a temporary name so that an interrupted download leaves
# no partial file under the final name.
download() {
  local url="$1" output="$2"
  if command -v curl >/dev/null 2>&1; then
    curl --fail --location --silent --show-error --retry 3 --output "$output.part" "$url"
  elif command -v wget >/dev/null 2>&1; then
    wget --quiet --tries=3 --output-document="$output.part" "$url"
  else
    echo "download.sh: neither curl nor wget found, install one of them" >&2
    return 1
  fi
  mv -- "$output.part" "$output"
}

failures=0
for entry in "${FILES[@]}"; do
  read -r name expected_md5 <<<"$entry"
  file="$directory/$name"

  if [[ -e "$file" ]]; then
    if verify "$file" "$expected_md5"; then
      echo "$file: present and valid"
      continue
    fi
    if [[ "$check_only" == true ]]; then
      echo "$file: invalid (not gzip, or decompressed MD5 is not $expected_md5)" >&2
      failures=$((failures + 1))
      continue
    fi
    echo "$file: invalid, downloading it again"
    rm -f -- "$file"
  elif [[ "$check_only" == true ]]; then
    echo "$file: missing" >&2
    failures=$((failures + 1))
    continue
  fi

  echo "$file: downloading $BASE_URL/$name"
  if ! download "$BASE_URL/$name" "$file"; then
    rm -f -- "$file.part"
    echo "$file: download failed, check the network connection and run the script again" >&2
    exit 1
  fi
  if ! verify "$file" "$expected_md5"; then
    rm -f -- "$file"
    echo "$file: downloaded file is invalid (decompressed MD5 is not $expected_md5)," \
      "removed it. Run the script again" >&2
    exit 1
  fi
  echo "$file: downloaded and valid"
done

if ((failures > 0)); then
  echo "download.sh: $failures file(s) missing or invalid in $directory," \
    "run without --check to download them" >&2
  exit 1
fi
