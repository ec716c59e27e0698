#!/usr/bin/env bash
# tracked-files.sh — fails when git tracks a binary or a file over 1 MiB.
#
# Build output (the tollgate binary, test binaries, profiles) must never be
# committed. Fixtures that are binary on purpose are listed in ALLOWED, by path.
set -euo pipefail
cd "$(dirname "$0")/../.."

limit=1048576
ALLOWED=()

bad=0
while IFS= read -r -d '' f; do
  [ -f "$f" ] || continue
  for a in "${ALLOWED[@]+"${ALLOWED[@]}"}"; do [ "$f" = "$a" ] && continue 2; done
  size=$(stat -c %s "$f")
  if [ "$size" -gt "$limit" ]; then
    echo "tracked file over 1 MiB: $f ($size bytes) — build output belongs in bin/ (ignored)"
    bad=1
  elif [ "$size" -gt 0 ] && ! grep -Iq . "$f"; then
    echo "tracked binary file: $f — build output belongs in bin/; list real fixtures in $0"
    bad=1
  fi
done < <(git ls-files -z)
exit $bad
