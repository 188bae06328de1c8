#!/usr/bin/env bash
# Fetch Trino 476 (the server tarball io.trino:trino-server:476:tar.gz) from Maven
# Central into ~/.cache/vivace/backends/trino and unpack it there, once. The
# benchmarks start it with scripts/backends/start-trino.sh (benches/tpch.py,
# benches/postgres.py). Needs `mvn`; Trino 476 runs on Java 24 or later
# (Temurin 25 under /usr/lib/jvm).
set -euo pipefail
dir="${VIVACE_BACKENDS:-$HOME/.cache/vivace/backends}/trino"
version=476
[[ -f "$dir/.done-$version" ]] && exit 0
rm -rf "$dir"
mkdir -p "$dir"
(cd "$dir" && mvn -q -B dependency:copy -Dartifact=io.trino:trino-server:$version:tar.gz -DoutputDirectory=.)
(cd "$dir" && tar xzf "trino-server-$version.tar.gz" && rm "trino-server-$version.tar.gz")
touch "$dir/.done-$version"
echo "Trino $version in $dir/trino-server-$version"
