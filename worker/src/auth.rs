//! Server-side enforcement of the cluster secret.

use tonic::{Request, Status};

use crate::{ClusterSecret, SECRET_HEADER};

/// A tonic interceptor refusing any call that does not present the cluster secret.
#[derive(Clone)]
pub struct SecretCheck {
    secret: ClusterSecret,
}

impl SecretCheck {
    /// Check calls against `secret`.
    pub fn new(secret: ClusterSecret) -> Self {
        Self { secret }
    }
}

impl tonic::service::Interceptor for SecretCheck {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        match request.metadata().get(SECRET_HEADER) {
            Some(value) if self.secret.matches(value.as_bytes()) => Ok(request),
            Some(_) => Err(Status::unauthenticated("wrong cluster secret")),
            None => Err(Status::unauthenticated(
                "missing cluster secret: only the coordinator and its workers may call this service",
            )),
        }
    }
}
