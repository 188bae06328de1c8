/*
 * Vivace test harness: starts one Elasticsearch node inside this JVM, from the
 * jars scripts/backends/fetch-elasticsearch.sh fetched from Maven Central.
 *
 * Why it exists: the distribution's launchers (the CLI that checks the system
 * and starts the server JVM) are not on Maven Central. A throwaway test node
 * needs only this: node settings from `key=value` arguments, the `elastic`
 * user's password from ELASTIC_PASSWORD (as the bootstrap password, held in an
 * in-memory keystore), logging configured from $ES_PATH_CONF, the modules under
 * path.home/modules, then a started Node. No bootstrap checks, no entitlements.
 * Written for Vivace with Elasticsearch's public classes.
 */
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.common.settings.KeyStoreWrapper;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.node.Node;
import org.elasticsearch.plugins.PluginsLoader;

public final class TestNode {
    public static void main(String[] args) throws Exception {
        Settings.Builder settings = Settings.builder();
        for (String arg : args) {
            String[] pair = arg.split("=", 2);
            if (pair.length != 2) {
                throw new IllegalArgumentException("not key=value: " + arg);
            }
            settings.put(pair[0], pair[1]);
        }
        String password = System.getenv("ELASTIC_PASSWORD");
        if (password != null && !password.isEmpty()) {
            KeyStoreWrapper keystore = KeyStoreWrapper.create();
            keystore.setString("bootstrap.password", password.toCharArray());
            settings.setSecureSettings(keystore);
        }
        Settings given = settings.build();
        String confDir = System.getenv("ES_PATH_CONF");
        Path config = confDir != null ? Path.of(confDir) : Path.of(given.get("path.home"), "config");
        Environment environment = new Environment(given, config);

        LogConfigurator.registerErrorListener();
        LogConfigurator.setNodeName(given.get("node.name", "node"));
        LogConfigurator.setClusterName(given.get("cluster.name", "elasticsearch"));
        LogConfigurator.configure(environment, true);

        PluginsLoader plugins = PluginsLoader.createPluginsLoader(
            PluginsLoader.loadModulesBundles(environment.modulesDir(), false),
            PluginsLoader.loadPluginsBundles(environment.pluginsDir(), false),
            Map.of()
        );
        Node node = new Node(environment, plugins).start();
        System.out.println("vivace test node started");

        // Run until SIGTERM, then close the node so that it leaves its data consistent.
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                node.awaitClose(10, TimeUnit.SECONDS);
            } catch (Exception e) {
                e.printStackTrace();
            }
            stopped.countDown();
        }));
        stopped.await();
    }
}
