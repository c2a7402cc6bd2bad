#!/usr/bin/env bash
# Format the project's Swift code in place with the committed .swift-format
# config (the same files that scripts/test.sh lints).
#
#   usage: scripts/format.sh          format in place
#          scripts/format.sh --lint   only lint, like scripts/test.sh does
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

mapfile -t files < <(scripts/swift-sources.sh)
case "${1:-}" in
    "") swift format format --in-place --parallel "${files[@]}" ;;
    --lint) swift format lint --strict --parallel "${files[@]}" ;;
    *)
        echo "usage: $0 [--lint]" >&2
        exit 2
        ;;
esac
