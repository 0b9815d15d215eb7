#!/usr/bin/env bash
# Re-vendors the /ui page's browser libraries from the npm registry, at the versions pinned in
# package.json / package-lock.json, into serve_app/ui/vendor/ (committed: serving needs no npm).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$here/package.json" "$here/package-lock.json" "$work/"
(cd "$work" && npm ci --ignore-scripts --no-audit --no-fund --silent)
m="$work/node_modules"
out="$here/vendor"
rm -rf "$out" && mkdir -p "$out/fonts" "$out/licenses"
cp "$m/marked/lib/marked.umd.js" "$m/dompurify/dist/purify.min.js" "$m/jszip/dist/jszip.min.js" \
   "$m/katex/dist/katex.min.js" "$m/katex/dist/katex.min.css" "$out/"
cp "$m"/katex/dist/fonts/*.woff2 "$out/fonts/"
for pkg in marked dompurify jszip katex; do
  for f in "$m/$pkg"/LICENSE*; do cp "$f" "$out/licenses/$pkg.$(basename "$f")"; done
done
echo "vendored into $out: $(du -sh "$out" | cut -f1)"
