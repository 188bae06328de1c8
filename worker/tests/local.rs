//! Workers of the same process are called in-process, without a socket; the
//! others over gRPC.

use datafusion_distributed::{ChannelResolver, GetWorkerInfoRequest, Worker};
use tokio::net::TcpListener;
use url::Url;
use vivace_worker::{ClusterSecret, LocalWorkers, SecretChannelResolver};

#[tokio::test]
async fn local_workers_are_reached_without_the_network() {
    let secret = ClusterSecret::new("worker-test-secret-0123456789").unwrap();
    // A port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = Url::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    let local = LocalWorkers::default();
    let resolver = SecretChannelResolver::with_local_workers(&secret, local.clone());
    assert!(
        resolver.get_worker_client_for_url(&url).await.is_err(),
        "nothing listens there, so a network call must fail"
    );

    local.add(
        url.clone(),
        Worker::default().with_version("in-process-test"),
    );
    let mut client = resolver.get_worker_client_for_url(&url).await.unwrap();
    let info = client
        .get_worker_info(GetWorkerInfoRequest {})
        .await
        .unwrap();
    assert_eq!(info.version, "in-process-test");

    local.remove(&url);
    assert!(resolver.get_worker_client_for_url(&url).await.is_err());
}
