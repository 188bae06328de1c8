/*
 * Vivace test harness stand-in for the `GET /` endpoint of Elasticsearch (its
 * rest-root module, which is not published to Maven Central). Written for
 * Vivace with Elasticsearch's public plugin API; no Elastic source is copied.
 *
 * Vivace reads the server's flavour and major version from `GET /`, so the
 * test node must answer it, and refuse it as Elasticsearch does: the request
 * runs as the action `cluster:monitor/main`, which security authorizes like
 * any other (the `monitor` privilege grants it; a key allowed only to read an
 * index gets 403). The answer has the fields Elasticsearch documents for the
 * endpoint, each taken from the running server: node and cluster name and
 * uuid from the cluster service, the version from Build.current(), the Lucene
 * version from Lucene.
 */
package vivace.testnode;

import java.io.IOException;
import java.util.Collection;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Predicate;
import java.util.function.Supplier;

import org.elasticsearch.Build;
import org.elasticsearch.action.ActionListener;
import org.elasticsearch.action.ActionRequest;
import org.elasticsearch.action.ActionRequestValidationException;
import org.elasticsearch.action.ActionResponse;
import org.elasticsearch.action.ActionType;
import org.elasticsearch.action.support.ActionFilters;
import org.elasticsearch.action.support.TransportAction;
import org.elasticsearch.client.internal.node.NodeClient;
import org.elasticsearch.cluster.ClusterState;
import org.elasticsearch.cluster.node.DiscoveryNodes;
import org.elasticsearch.cluster.service.ClusterService;
import org.elasticsearch.common.io.stream.StreamOutput;
import org.elasticsearch.common.util.concurrent.EsExecutors;
import org.elasticsearch.features.NodeFeature;
import org.elasticsearch.injection.guice.Inject;
import org.elasticsearch.plugins.ActionPlugin;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.rest.BaseRestHandler;
import org.elasticsearch.rest.RestHandler;
import org.elasticsearch.rest.RestRequest;
import org.elasticsearch.rest.RestResponse;
import org.elasticsearch.rest.RestStatus;
import org.elasticsearch.rest.action.RestActionListener;
import org.elasticsearch.tasks.Task;
import org.elasticsearch.transport.TransportService;
import org.elasticsearch.xcontent.XContentBuilder;

public final class RootInfoPlugin extends Plugin implements ActionPlugin {
    static final ActionType<Allowed> READ_ROOT = new ActionType<>("cluster:monitor/main");

    private final AtomicReference<ClusterService> cluster = new AtomicReference<>();

    @Override
    public Collection<?> createComponents(PluginServices services) {
        cluster.set(services.clusterService());
        return List.of();
    }

    @Override
    public Collection<ActionHandler> getActions() {
        return List.of(new ActionHandler(READ_ROOT, ReadRoot.class));
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
                // A refusal goes back as the listener's failure: 403 and its reason.
                return channel -> client.execute(READ_ROOT, new Ask(), new RestActionListener<>(channel) {
                    @Override
                    protected void processResponse(Allowed allowed) throws IOException {
                        channel.sendResponse(new RestResponse(RestStatus.OK, describe(channel.newBuilder())));
                    }
                });
            }
        });
    }

    private XContentBuilder describe(XContentBuilder json) throws IOException {
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

    /** The request of the action: nothing but its name, which security checks. */
    public static final class Ask extends ActionRequest {
        @Override
        public ActionRequestValidationException validate() {
            return null;
        }
    }

    /** The action's answer: that the caller may read GET /. Never leaves the node. */
    public static final class Allowed extends ActionResponse {
        @Override
        public void writeTo(StreamOutput out) {
            TransportAction.localOnly();
        }
    }

    /** Runs once security has allowed the caller the action. */
    public static final class ReadRoot extends TransportAction<Ask, Allowed> {
        @Inject
        public ReadRoot(TransportService transport, ActionFilters filters) {
            super(READ_ROOT.name(), filters, transport.getTaskManager(), EsExecutors.DIRECT_EXECUTOR_SERVICE);
        }

        @Override
        protected void doExecute(Task task, Ask request, ActionListener<Allowed> listener) {
            listener.onResponse(new Allowed());
        }
    }
}
