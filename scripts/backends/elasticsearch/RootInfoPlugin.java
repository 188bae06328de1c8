/*
 * Vivace test harness stand-in for the `GET /` endpoint of Elasticsearch (its
 * rest-root module, which is not published to Maven Central). Written for
 * Vivace with Elasticsearch's public plugin API; no Elastic source is copied.
 *
 * Vivace reads the server's flavour and major version from `GET /`, so the
 * test node must answer it. The answer has the fields Elasticsearch documents
 * for that endpoint, each taken from the running server: node and cluster name
 * and uuid from the cluster service, the version from Build.current(), the
 * Lucene version from Lucene. Unlike the real module it checks no privilege
 * beyond authentication (security still authenticates every REST request).
 */
package vivace.testnode;

import java.util.Collection;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Predicate;
import java.util.function.Supplier;

import org.elasticsearch.Build;
import org.elasticsearch.client.internal.node.NodeClient;
import org.elasticsearch.cluster.ClusterState;
import org.elasticsearch.cluster.node.DiscoveryNodes;
import org.elasticsearch.cluster.service.ClusterService;
import org.elasticsearch.features.NodeFeature;
import org.elasticsearch.plugins.ActionPlugin;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.rest.BaseRestHandler;
import org.elasticsearch.rest.RestHandler;
import org.elasticsearch.rest.RestRequest;
import org.elasticsearch.rest.RestResponse;
import org.elasticsearch.rest.RestStatus;
import org.elasticsearch.xcontent.XContentBuilder;

public final class RootInfoPlugin extends Plugin implements ActionPlugin {
    private final AtomicReference<ClusterService> cluster = new AtomicReference<>();

    @Override
    public Collection<?> createComponents(PluginServices services) {
        cluster.set(services.clusterService());
        return List.of();
    }

    @Override
    public Collection<RestHandler> getRestHandlers(
        RestHandlersServices services,
        Supplier<DiscoveryNodes> nodes,
        Predicate<NodeFeature> features
    ) {
        return List.of(new BaseRestHandler() {
            @Override
            public String getName() {
                return "vivace_test_root_info";
            }

            @Override
            public List<Route> routes() {
                return List.of(new Route(RestRequest.Method.GET, "/"), new Route(RestRequest.Method.HEAD, "/"));
            }

            @Override
            protected RestChannelConsumer prepareRequest(RestRequest request, NodeClient client) {
                return channel -> channel.sendResponse(new RestResponse(RestStatus.OK, describe(channel.newBuilder())));
            }
        });
    }

    private XContentBuilder describe(XContentBuilder json) throws java.io.IOException {
        ClusterService service = cluster.get();
        ClusterState state = service.state();
        Build build = Build.current();
        return json.startObject()
            .field("name", service.getNodeName())
            .field("cluster_name", state.getClusterName().value())
            .field("cluster_uuid", state.metadata().clusterUUID())
            .startObject("version")
            .field("number", build.qualifiedVersion())
            .field("build_flavor", build.flavor())
            .field("build_type", build.type().displayName())
            .field("build_hash", build.hash())
            .field("build_date", build.date())
            .field("build_snapshot", build.isSnapshot())
            .field("lucene_version", org.apache.lucene.util.Version.LATEST.toString())
            .field("minimum_wire_compatibility_version", build.minWireCompatVersion())
            .field("minimum_index_compatibility_version", build.minIndexCompatVersion())
            .endObject()
            .field("tagline", "You Know, for Search")
            .endObject();
    }
}
