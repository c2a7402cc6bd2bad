#!/usr/bin/env bash
# Fills the git-ignored folder .device/ that the GPU scripts carry (bench/engines/README.md): kiln.xz, a
# stripped static `kiln`, and gputests.tar.xz, the debug test bundle with the Swift libraries it links in lib/.
# COMMIT (default HEAD) is built in its own worktree under .build-device/, so the checkout may change meanwhile.
# baselines.py comes from the shared bench folder; copy it into .device/ yourself.
# Use: bash bench/device-prep.sh [COMMIT]
set -euo pipefail
root=$(git rev-parse --show-toplevel)
commit=$(git -C "$root" rev-parse "${1:-HEAD}")
work=$root/.build-device
tree=$work/tree
[[ -d $tree ]] || git -C "$root" worktree add --detach "$tree" "$commit"
git -C "$tree" checkout -q --detach "$commit"
cd "$tree"
echo "building $commit"
swift build -c release --static-swift-stdlib --product kiln --scratch-path "$work/static"
swift build --build-tests --scratch-path "$work/debug"
mkdir -p "$root/.device" "$work/bundle/lib"
bin=$(swift build -c release --static-swift-stdlib --scratch-path "$work/static" --show-bin-path)
strip -o "$work/kiln" "$bin/kiln"
xz -T2 -9e -c "$work/kiln" > "$root/.device/kiln.xz"
bundle=$(swift build --scratch-path "$work/debug" --show-bin-path)/KilnPackageTests.xctest
strip -o "$work/bundle/KilnPackageTests.xctest" "$bundle"
ldd "$bundle" | awk '$3 ~ /^\/opt\// {print $3}' | xargs -r cp -t "$work/bundle/lib"
tar -cJf "$root/.device/gputests.tar.xz" -C "$work/bundle" .
echo "$commit" > "$root/.device/commit"
ls -la "$root/.device"
