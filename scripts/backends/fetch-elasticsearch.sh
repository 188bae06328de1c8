#!/usr/bin/env bash
# Assemble an Elasticsearch 9.5.3 node from Maven Central into
# ${VIVACE_BACKENDS:-~/.cache/vivace/backends}/elasticsearch/9.5.3, once (again
# only when the version or the stand-in sources below change). The tests start
# it from there (tests/common/elasticsearch.rs). Needs mvn, python3 and a JDK 21
# or later with javac (VIVACE_JAVA21, else the newest under /usr/lib/jvm).
#
# Elastic publishes the server and some modules to Maven Central, not the
# distribution. The layout mirrors the distribution's:
#   lib/                       org.elasticsearch:elasticsearch and its runtime jars
#   modules/transport-netty4   HTTP and transport
#   modules/x-pack-core        \ security: basic authentication and API keys
#   modules/x-pack-security    /
#   modules/vivace-root-info   stand-in: GET / (rest-root is not on Central)
#   modules/vivace-email-analysis  stand-in: the analysis-common parts the
#                              security index needs (analysis-common is not on Central)
#   launcher/TestNode.class    stand-in: starts the node in-process (the CLI launcher is not on Central)
# The stand-ins are Vivace's own code, in scripts/backends/elasticsearch/.
#
# Substitutes, because the versions x-pack names for 9.5.3 are not on Central
# (SAML realms would not work; basic authentication and API keys do not use them):
#   x-pack-template-resources 8.19.21, es-opensaml-security-api 8.19.21,
#   OpenSAML 4.0.1 and Shibboleth java-support 8.0.0 (for 4.3.0 and 8.4.0).
set -euo pipefail
version=9.5.3
templates_version=8.19.21
opensaml_version=4.0.1
java_support_version=8.0.0
sources="$(cd "$(dirname "$0")" && pwd)/elasticsearch"
home="${VIVACE_BACKENDS:-$HOME/.cache/vivace/backends}/elasticsearch/$version"
stamp=$(cat "$0" "$sources"/* | sha256sum | cut -c1-12)
[[ -f "$home/.done-$version-$stamp" ]] && exit 0

if [[ -n "${VIVACE_JAVA21:-}" ]]; then
  jdk=$(dirname "$(dirname "$VIVACE_JAVA21")")
else
  jdk=$(for d in /usr/lib/jvm/*; do
          v=$(basename "$d" | grep -o '[0-9]\+' | head -1)
          [[ -n "$v" && "$v" -ge 21 && -x "$d/bin/javac" ]] && echo "$v $d"
        done | sort -n | tail -1 | cut -d' ' -f2)
fi
[[ -x "$jdk/bin/javac" ]] || { echo "no JDK 21 or later with javac under /usr/lib/jvm" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The runtime jars of one artifact (and any extra dependencies) into $work/$1/jars.
resolve() { # NAME GROUP ARTIFACT [EXCLUSIONS] [MORE DEPENDENCIES]
  mkdir -p "$work/$1"
  cat > "$work/$1/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
<groupId>vivace.backends</groupId><artifactId>elasticsearch-$1</artifactId><version>1</version>
<dependencies><dependency><groupId>$2</groupId><artifactId>$3</artifactId><version>$version</version>
<exclusions>${4:-}</exclusions></dependency>${5:-}</dependencies></project>
POM
  (cd "$work/$1" && mvn -q -B dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=jars)
}

# modules/NAME: its jars less those already in lib/ or in the folders given,
# with the plugin descriptor and entitlement policy its jar carries.
module() { # NAME [FOLDER...]
  local name=$1 jar base folder
  shift
  mkdir -p "$home/modules/$name"
  for jar in "$work/$name/jars/"*.jar; do
    base=$(basename "$jar")
    [[ -e "$home/lib/$base" ]] && continue
    for folder in "$@"; do [[ -e "$folder/$base" ]] && continue 2; done
    cp "$jar" "$home/modules/$name/"
  done
  python3 - "$home/modules/$name" "$name" "$version" <<'PY'
import sys, zipfile
folder, name, version = sys.argv[1:]
with zipfile.ZipFile(f"{folder}/{name}-{version}.jar") as jar:
    for entry in ("plugin-descriptor.properties", "entitlement-policy.yaml"):
        try:
            data = jar.read(f"META-INF/es-plugins/{name}/{entry}")
        except KeyError:
            continue
        open(f"{folder}/{entry}", "wb").write(data)
PY
}

rm -rf "$home"
mkdir -p "$home/lib" "$home/modules" "$home/plugins" "$home/config" "$home/launcher"
resolve server org.elasticsearch elasticsearch
cp "$work/server/jars/"*.jar "$home/lib/"
resolve transport-netty4 org.elasticsearch.plugin transport-netty4
module transport-netty4
resolve x-pack-core org.elasticsearch.plugin x-pack-core \
  '<exclusion><groupId>org.elasticsearch.plugin</groupId><artifactId>x-pack-template-resources</artifactId></exclusion>' \
  "<dependency><groupId>org.elasticsearch.plugin</groupId><artifactId>x-pack-template-resources</artifactId><version>$templates_version</version></dependency>"
module x-pack-core

# x-pack-security's POM already lists its whole runtime closure: take exactly
# those jars (not their dependencies), with the substitutes above.
mkdir -p "$work/x-pack-security"
(cd "$work/x-pack-security" && mvn -q -B dependency:copy \
  -Dartifact="org.elasticsearch.plugin:x-pack-security:$version:pom" -DoutputDirectory=.)
python3 - "$work/x-pack-security" "$version" "$opensaml_version" "$java_support_version" "$templates_version" <<'PY'
import re, sys
folder, version, opensaml, java_support, esos = sys.argv[1:]
upstream = open(f"{folder}/x-pack-security-{version}.pom").read()
deps = [("org.elasticsearch.plugin", "x-pack-security", version)] + re.findall(
    r"<dependency>\s*<groupId>([^<]*)</groupId>\s*<artifactId>([^<]*)</artifactId>\s*<version>([^<]*)</version>",
    upstream)
substitute = {"org.opensaml": opensaml, "net.shibboleth.utilities": java_support}
xml = "".join(
    f"<dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
    f"<version>{esos if a == 'es-opensaml-security-api' else substitute.get(g, v)}</version></dependency>"
    for g, a, v in deps)
open(f"{folder}/pom.xml", "w").write(
    '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
    '<groupId>vivace.backends</groupId><artifactId>elasticsearch-security</artifactId><version>1</version>'
    f"<dependencies>{xml}</dependencies></project>\n")
PY
(cd "$work/x-pack-security" && mvn -q -B dependency:copy-dependencies -DexcludeTransitive=true -DoutputDirectory=jars)
# Security bundles its own copy of transport-netty4 and the netty jars.
cp -n "$work/transport-netty4/jars/"*.jar "$work/x-pack-security/jars/"
module x-pack-security "$home/modules/x-pack-core"

# The stand-ins, compiled against the server's jars.
javac() { "$jdk/bin/javac" --release 21 -nowarn -cp "$home/lib/*" "$@"; }
standin() { # NAME CLASS DESCRIPTION
  mkdir -p "$work/$1" "$home/modules/$1"
  javac -d "$work/$1" "$sources/${2##*.}.java"
  "$jdk/bin/jar" cf "$home/modules/$1/$1-$version.jar" -C "$work/$1" .
  printf '%s\n' "name=$1" "description=$3" "version=$version" "elasticsearch.version=$version" \
    "java.version=21" "classname=$2" > "$home/modules/$1/plugin-descriptor.properties"
}
standin vivace-root-info vivace.testnode.RootInfoPlugin "Vivace test stand-in for GET /"
standin vivace-email-analysis vivace.testnode.EmailAnalysisPlugin \
  "Vivace test stand-in for uax_url_email, pattern_capture and unique"
javac -d "$home/launcher" "$sources/TestNode.java"
cp "$sources/log4j2.properties" "$home/config/"

# Native zstd (stored-field compression of best_compression indices, which
# the system indices use) ships only in Elastic's tarball: use the system's.
mkdir -p "$home/lib/platform/linux-x64"
for zstd in /lib/x86_64-linux-gnu/libzstd.so.1 /usr/lib/x86_64-linux-gnu/libzstd.so.1 /usr/lib64/libzstd.so.1; do
  [[ -e "$zstd" ]] && { ln -sf "$zstd" "$home/lib/platform/linux-x64/libzstd.so"; break; }
done
[[ -e "$home/lib/platform/linux-x64/libzstd.so" ]] || echo "warning: no libzstd.so.1 found for Elasticsearch" >&2

touch "$home/.done-$version-$stamp"
echo "Elasticsearch $version in $home ($(du -sh "$home" | cut -f1))"
