#!/usr/bin/env bash
# Fetch Apache Cassandra 5.0 (org.apache.cassandra:cassandra-all and its
# dependencies) from Maven Central into ~/.cache/vivace/backends/cassandra/lib,
# once. The tests start it from there on OpenJDK 17 (tests/common/cassandra.rs).
# Needs `mvn`.
set -euo pipefail
dir="${VIVACE_BACKENDS:-$HOME/.cache/vivace/backends}/cassandra"
version=5.0.8
[[ -f "$dir/.done-$version" ]] && exit 0
rm -rf "$dir"
mkdir -p "$dir"
cat > "$dir/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
<groupId>vivace.backends</groupId><artifactId>cassandra-deps</artifactId><version>1</version>
<dependencies><dependency><groupId>org.apache.cassandra</groupId>
<artifactId>cassandra-all</artifactId><version>$version</version></dependency></dependencies></project>
POM
(cd "$dir" && mvn -q -B dependency:copy-dependencies -DoutputDirectory=lib)
touch "$dir/.done-$version"
echo "Cassandra $version in $dir/lib"
