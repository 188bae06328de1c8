#!/usr/bin/env bash
# Start Trino 476 (scripts/backends/fetch-trino.sh) as a single node, coordinator
# and worker in one JVM, on 127.0.0.1:$TRINO_PORT, and print `READY pid=…` once
# /v1/info says it is no longer starting. Everything it writes lives in $TRINO_DIR:
#   etc/       configuration; catalogs: hive (file metastore over the local
#              filesystem) and tpch / memory when in $TRINO_PLUGINS; any other
#              etc/catalog/*.properties put there beforehand is kept (e.g. a
#              connector.name=postgresql catalog, with TRINO_PLUGINS=postgresql)
#   data/      node data; the server's pid is in data/var/run/launcher.pid and its
#              log in data/var/log/server.log
#   warehouse/ the hive catalog's local.location: table locations are
#              local:///<path> RELATIVE to it (file:/// ones are accepted but read
#              0 rows), so symlink data folders into it
# Environment: TRINO_DIR (required), TRINO_PORT (8089), TRINO_HEAP (2G: -Xmx;
# query.max-memory-per-node is a quarter of it, query.max-memory half, as in the
# shared recipe), TRINO_PLUGINS ("hive": only these plugins are loaded, loading
# all ~70 is slow), VIVACE_JAVA24 (a Java 24 or later, else Temurin 25 under
# /usr/lib/jvm). Stop it by killing that pid (SIGTERM). Ready in ~20 s.
set -euo pipefail
: "${TRINO_DIR:?set TRINO_DIR to a folder for its configuration and data}"
install="${VIVACE_BACKENDS:-$HOME/.cache/vivace/backends}/trino/trino-server-476"
java=${VIVACE_JAVA24:-$(ls -d /usr/lib/jvm/temurin-2[4-9]* 2>/dev/null | tail -1)}
port=${TRINO_PORT:-8089}
heap=${TRINO_HEAP:-2G}
plugins=${TRINO_PLUGINS:-hive}
[[ -d $install ]] || { echo "no Trino in $install: run scripts/backends/fetch-trino.sh" >&2; exit 1; }
[[ -x $java/bin/java ]] || { echo "no Java 24 or later under /usr/lib/jvm; set VIVACE_JAVA24" >&2; exit 1; }
case $heap in
  *[gG]) heap_mb=$(( ${heap%[gG]} * 1024 )) ;;
  *[mM]) heap_mb=${heap%[mM]} ;;
  *) echo "TRINO_HEAP must look like 2G or 1536M, not $heap" >&2; exit 1 ;;
esac
if curl -s -o /dev/null --max-time 1 "127.0.0.1:$port/v1/info"; then echo "port $port busy" >&2; exit 1; fi
etc=$TRINO_DIR/etc data=$TRINO_DIR/data warehouse=$TRINO_DIR/warehouse
mkdir -p "$etc/catalog" "$data/tmp" "$warehouse/metastore" "$TRINO_DIR/plugins"
for p in $plugins; do ln -sfn "$install/plugin/$p" "$TRINO_DIR/plugins/$p"; done
cat > "$etc/node.properties" <<P
node.environment=bench
node.id=bench-node-1
node.data-dir=$data
node.bind-ip=127.0.0.1
node.internal-address=127.0.0.1
P
cat > "$etc/jvm.config" <<P
-server
-Xmx$heap
-XX:+UseG1GC
-XX:G1HeapRegionSize=32M
-XX:+ExplicitGCInvokesConcurrent
-XX:+ExitOnOutOfMemoryError
-XX:-OmitStackTraceInFastThrow
-XX:ReservedCodeCacheSize=256M
-XX:PerMethodRecompilationCutoff=10000
-XX:PerBytecodeRecompilationCutoff=10000
-Djdk.attach.allowAttachSelf=true
-Djdk.nio.maxCachedBufferSize=2000000
-Dfile.encoding=UTF-8
-XX:+EnableDynamicAgentLoading
-Djava.io.tmpdir=$data/tmp
P
cat > "$etc/config.properties" <<P
coordinator=true
node-scheduler.include-coordinator=true
http-server.http.port=$port
discovery.uri=http://127.0.0.1:$port
plugin.dir=$TRINO_DIR/plugins
query.max-memory=$(( heap_mb / 2 ))MB
query.max-memory-per-node=$(( heap_mb / 4 ))MB
P
echo "io.trino=INFO" > "$etc/log.properties"
for p in tpch memory; do
  [[ " $plugins " == *" $p "* ]] && echo "connector.name=$p" > "$etc/catalog/$p.properties"
done
if [[ " $plugins " == *" hive "* ]]; then
  cat > "$etc/catalog/hive.properties" <<P
connector.name=hive
hive.metastore=file
hive.metastore.catalog.dir=local:///metastore
fs.native-local.enabled=true
local.location=$warehouse
fs.hadoop.enabled=false
hive.non-managed-table-writes-enabled=true
hive.storage-format=PARQUET
P
fi
started=$(date +%s)
"$install/bin/launcher" --etc-dir "$etc" --data-dir "$data" --jvm-dir "$java" start >/dev/null
for _ in $(seq 1 600); do
  if curl -s --max-time 2 "127.0.0.1:$port/v1/info" 2>/dev/null | grep -q '"starting":false'; then
    echo "READY pid=$(cat "$data/var/run/launcher.pid") http=127.0.0.1:$port after $(( $(date +%s) - started )) s"
    exit 0
  fi
  "$install/bin/launcher" --etc-dir "$etc" --data-dir "$data" status >/dev/null 2>&1 || {
    echo "Trino exited:" >&2; tail -40 "$data/var/log/server.log" >&2; exit 1; }
  sleep 0.5
done
echo "Trino did not start in 300 s:" >&2; tail -40 "$data/var/log/server.log" >&2; exit 1
