#!/usr/bin/env bash
# Checks that every module in src/ includes only its own headers and those of the modules it declares. The table is
# the kaiwa_module() calls in src/CMakeLists.txt (name, DIR, DEPENDS), the same declarations the libraries link by;
# a file belongs to the module with the longest DIR that contains it ("signal/native/x.cpp" is native's, not
# signal's), and so does an included path. Prints one line per violation and exits 1 if there is any; also when a
# file in src/ belongs to no module, or an include names a module directory that does not exist.
#
#   scripts/check-layers.sh            (from anywhere in the tree; needs no build)
set -euo pipefail
cd "$(dirname "$0")/.."

# "name dir dep dep ..." per module, from the calls' text up to SOURCES.
table=$(awk '
  /^[[:space:]]*kaiwa_module\(/ { call = ""; inside = 1 }
  inside { call = call " " $0; if ($0 ~ /\)/) { inside = 0; print call } }
' src/CMakeLists.txt | sed -E 's/^[[:space:]]*kaiwa_module\(//; s/SOURCES.*//; s/\).*//' | awk '
  { name = $1; dir = ""; deps = ""; mode = ""
    for (i = 2; i <= NF; i++) {
      if ($i == "DIR" || $i == "DEPENDS") { mode = $i; continue }
      if (mode == "DIR") dir = $i; else if (mode == "DEPENDS") deps = deps " " $i
    }
    print name, dir deps }')

if [ -z "$table" ]; then
  echo "check-layers: no kaiwa_module() calls found in src/CMakeLists.txt"
  exit 1
fi

# One awk pass over the table and every quoted include in src/ (file:line:text), and the list of files.
violations=$(
  {
    sed 's/^/T /' <<<"$table"
    find src -type f \( -name '*.cpp' -o -name '*.hpp' -o -name '*.h' \) | sed 's/^/F /'
    grep -rnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[^"]*/' src --include='*.cpp' --include='*.hpp' \
      --include='*.h' | sed 's/^/I /' || true
  } | awk '
    # The module of a path under src/: the one with the longest directory that is a prefix of it.
    function moduleOf(path,   n, best, bestLen) {
      best = ""; bestLen = 0
      for (n in dir) if (index(path, dir[n] "/") == 1 && length(dir[n]) > bestLen) { best = n; bestLen = length(dir[n]) }
      return best
    }
    $1 == "T" { dir[$2] = $3; allowed[$2] = " " $2 " "; for (i = 4; i <= NF; i++) allowed[$2] = allowed[$2] $i " "; next }
    $1 == "F" {
      rel = substr($2, 5)
      if (rel ~ /\// && moduleOf(rel) == "") print $2 ": in no module (add its directory to a kaiwa_module() in src/CMakeLists.txt)"
      next
    }
    $1 == "I" {
      line = substr($0, 3); split(line, parts, ":"); file = parts[1]; num = parts[2]
      target = line; sub(/^[^"]*"/, "", target); sub(/".*$/, "", target)
      own = moduleOf(substr(file, 5)); mod = moduleOf(target)
      if (own == "") next
      if (mod == "") print file ":" num ": includes \"" target "\", which is in no module"
      else if (index(allowed[own], " " mod " ") == 0)
        print file ":" num ": module " own " includes \"" target "\" of module " mod ", which it does not depend on"
    }'
)

if [ -n "$violations" ]; then
  echo "$violations"
  echo "check-layers: $(wc -l <<<"$violations") includes or files break the module table in src/CMakeLists.txt"
  exit 1
fi
echo "check-layers: $(wc -l <<<"$table") modules, every include within its declared dependencies"
