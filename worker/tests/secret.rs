//! A worker refuses every call that does not present the cluster secret: a client
//! talking straight to its gRPC service gets `Unauthenticated`.

use datafusion_distributed::grpc::{BoxCloneSyncChannel, create_worker_client};
use datafusion_distributed::{ChannelResolver, GetWorkerInfoRequest};
use tokio::net::TcpListener;
use vivace_worker::{ClusterSecret, SecretChannelResolver, WorkerOptions, spawn_worker};

#[tokio::test]
async fn calls_without_the_right_secret_are_refused() {
    let secret = ClusterSecret::new("worker-test-secret-0123456789").unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let worker = spawn_worker(
        listener,
        WorkerOptions {
            secret: secret.clone(),
            runtime: None,
            local: None,
            connectors: Default::default(),
        },
    )
    .unwrap();

    let plain = tonic::transport::Channel::from_shared(worker.url.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut no_secret = create_worker_client(BoxCloneSyncChannel::new(plain));
    let Err(err) = no_secret.get_worker_info(GetWorkerInfoRequest {}).await else {
        panic!("a call without the secret was accepted");
    };
    assert!(err.to_string().contains("missing cluster secret"), "{err}");

    let wrong =
        SecretChannelResolver::new(&ClusterSecret::new("some-other-cluster-secret").unwrap());
    let mut wrong = wrong.get_worker_client_for_url(&worker.url).await.unwrap();
    let Err(err) = wrong.get_worker_info(GetWorkerInfoRequest {}).await else {
        panic!("a call with a wrong secret was accepted");
    };
    assert!(err.to_string().contains("wrong cluster secret"), "{err}");

    let right = SecretChannelResolver::new(&secret);
    let mut right = right.get_worker_client_for_url(&worker.url).await.unwrap();
    assert!(right.get_worker_info(GetWorkerInfoRequest {}).await.is_ok());
    worker.stop().await;
}
