//! Registration and heartbeats, worker → coordinator, over Arrow Flight `DoAction`.
//!
//! A worker sends `vivace.heartbeat` with its id and URL every
//! [`HEARTBEAT_INTERVAL`]; the first one registers it. The coordinator drops a
//! worker it has not heard from for [`EXPIRY`]. We use Flight rather than a bespoke
//! gRPC service because its generated code ships with arrow-flight (no protoc), and
//! the cluster already speaks it.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaResult, Ticket,
};
use futures::Stream;
use serde::{Deserialize, Serialize};
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status, Streaming};

use crate::{ClusterSecret, SECRET_HEADER, SecretCheck};

/// The Flight action type of a heartbeat.
pub const HEARTBEAT_ACTION: &str = "vivace.heartbeat";
/// How often a worker reports.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);
/// How long the coordinator keeps a worker it no longer hears from.
pub const EXPIRY: Duration = Duration::from_secs(8);

/// The metric counting heartbeats, by `result` (`ok`, `failed`).
pub const HEARTBEATS_METRIC: &str = "vivace_worker_heartbeats_total";

/// When the coordinator last acknowledged this worker's heartbeat.
#[derive(Debug, Clone, Default)]
pub struct Registration {
    last_ok: Arc<Mutex<Option<Instant>>>,
}

impl Registration {
    /// Record a heartbeat's outcome (and count it).
    pub fn heartbeat(&self, ok: bool) {
        metrics::counter!(HEARTBEATS_METRIC, "result" => if ok { "ok" } else { "failed" })
            .increment(1);
        if ok {
            *self.last_ok.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        }
    }

    /// The coordinator acknowledged a heartbeat within the time it keeps a
    /// silent worker: it routes tasks here.
    pub fn registered(&self) -> bool {
        self.last_ok
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|at| at.elapsed() < EXPIRY.max(HEARTBEAT_INTERVAL * 2))
    }
}

/// What a worker says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Stable id of the worker process.
    pub node_id: String,
    /// URL the coordinator and other workers use to reach its worker service.
    pub url: String,
    /// Its tasks of the queries it ran lately.
    #[serde(default)]
    pub task_rows: crate::progress::Report,
}

/// Receives heartbeats on the coordinator.
pub trait HeartbeatSink: Send + Sync + 'static {
    /// Record that `heartbeat.node_id` is alive at `heartbeat.url`.
    fn heartbeat(&self, heartbeat: Heartbeat);
}

/// The coordinator's Flight service accepting heartbeats (everything else is
/// unimplemented), wrapped in the cluster secret check.
pub fn membership_service<S: HeartbeatSink>(
    sink: Arc<S>,
    secret: ClusterSecret,
) -> InterceptedService<FlightServiceServer<MembershipService<S>>, SecretCheck> {
    InterceptedService::new(
        FlightServiceServer::new(MembershipService { sink }),
        SecretCheck::new(secret),
    )
}

/// Send heartbeats to `coordinator` (`host:port`) forever; failures are logged and
/// retried, so a worker started before its coordinator joins when it comes up.
pub async fn heartbeat_loop(
    coordinator: String,
    heartbeat: Heartbeat,
    secret: ClusterSecret,
    registration: Registration,
) {
    let mut client: Option<FlightServiceClient<tonic::transport::Channel>> = None;
    let mut reported_failure = false;
    loop {
        if client.is_none() {
            client = tonic::transport::Endpoint::from_shared(format!("http://{coordinator}"))
                .ok()
                .map(|e| e.connect_timeout(Duration::from_secs(3)).connect_lazy())
                .map(FlightServiceClient::new);
        }
        if let Some(c) = client.as_mut() {
            let report = Heartbeat {
                task_rows: crate::progress::TaskProgress::global().local_report(),
                ..heartbeat.clone()
            };
            let body = serde_json::to_vec(&report).expect("heartbeat serialises");
            let mut request = Request::new(Action {
                r#type: HEARTBEAT_ACTION.to_string(),
                body: body.into(),
            });
            request.metadata_mut().insert(
                SECRET_HEADER,
                secret.value().parse().expect("secret is validated ASCII"),
            );
            let sent = c.do_action(request).await;
            registration.heartbeat(sent.is_ok());
            match sent {
                Ok(_) if reported_failure => {
                    tracing::info!(%coordinator, "registered with the coordinator");
                    reported_failure = false;
                }
                Ok(_) => {}
                Err(status) => {
                    if !reported_failure {
                        tracing::warn!(%coordinator, error = %status.message(), "heartbeat failed; retrying");
                        reported_failure = true;
                    }
                    if status.code() == tonic::Code::Unauthenticated {
                        tracing::error!("the coordinator refused the cluster secret");
                    }
                }
            }
        }
        tokio::time::sleep(HEARTBEAT_INTERVAL).await;
    }
}

/// Flight service implementation behind [`membership_service`].
pub struct MembershipService<S> {
    sink: Arc<S>,
}

type Boxed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

fn unsupported<T>() -> Result<T, Status> {
    Err(Status::unimplemented(
        "the coordinator's cluster port only accepts heartbeats",
    ))
}

#[tonic::async_trait]
impl<S: HeartbeatSink> FlightService for MembershipService<S> {
    type HandshakeStream = Boxed<HandshakeResponse>;
    type ListFlightsStream = Boxed<FlightInfo>;
    type DoGetStream = Boxed<FlightData>;
    type DoPutStream = Boxed<PutResult>;
    type DoExchangeStream = Boxed<FlightData>;
    type DoActionStream = Boxed<arrow_flight::Result>;
    type ListActionsStream = Boxed<ActionType>;

    async fn do_action(
        &self,
        request: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        let action = request.into_inner();
        if action.r#type != HEARTBEAT_ACTION {
            return unsupported();
        }
        let heartbeat: Heartbeat = serde_json::from_slice(&action.body)
            .map_err(|e| Status::invalid_argument(format!("bad heartbeat: {e}")))?;
        url::Url::parse(&heartbeat.url)
            .map_err(|e| Status::invalid_argument(format!("bad worker URL: {e}")))?;
        self.sink.heartbeat(heartbeat);
        Ok(Response::new(Box::pin(futures::stream::empty())))
    }

    async fn handshake(
        &self,
        _: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        unsupported()
    }
    async fn list_flights(
        &self,
        _: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        unsupported()
    }
    async fn get_flight_info(
        &self,
        _: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        unsupported()
    }
    async fn poll_flight_info(
        &self,
        _: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        unsupported()
    }
    async fn get_schema(
        &self,
        _: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        unsupported()
    }
    async fn do_get(&self, _: Request<Ticket>) -> Result<Response<Self::DoGetStream>, Status> {
        unsupported()
    }
    async fn do_put(
        &self,
        _: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        unsupported()
    }
    async fn do_exchange(
        &self,
        _: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        unsupported()
    }
    async fn list_actions(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        unsupported()
    }
}
