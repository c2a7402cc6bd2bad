#!/usr/bin/env bash
# Print the Swift files that swift-format owns, one per line, relative to the
# repository root: Package.swift and every .swift file under Sources/, Tests/
# and Examples/, except generated protobuf code (*/Generated/).
#
# Used by scripts/test.sh (lint) and scripts/format.sh (format in place).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo Package.swift
dirs=()
for d in Sources Tests Examples; do
    [ -d "$d" ] && dirs+=("$d")
done
if [ ${#dirs[@]} -gt 0 ]; then
    find "${dirs[@]}" -name '*.swift' -type f -not -path '*/Generated/*' | LC_ALL=C sort
fi
