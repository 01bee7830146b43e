//! The validation authority over gRPC: [`router`] serves any [`ValidationAuthority`] (a remote
//! perspective runs `cairn va serve`), and [`RemoteVa`] is the client that implements the trait,
//! so the primary VA fans out to remote perspectives without knowing they are remote.

use crate::RpcError;
use crate::client::{RpcClient, RpcClientConfig};
use crate::server::RpcRouter;
use async_trait::async_trait;
use cairn_api::va::{CaaCheck, ValidationAuthority, ValidationOutcome, ValidationRequest};
use cairn_core::{Identifier, Problem, ProblemType};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The gRPC service name.
pub const SERVICE: &str = "cairn.va.ValidationAuthority";

/// The `CheckCaa` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckCaaRequest {
    /// The name whose CAA records are checked.
    pub identifier: Identifier,
    /// What the check needs.
    pub check: CaaCheck,
}

/// The methods of `va`.
pub fn router(va: Arc<dyn ValidationAuthority>) -> RpcRouter {
    let caa = va.clone();
    RpcRouter::new(SERVICE)
        .unary("Validate", move |req: ValidationRequest| {
            let va = va.clone();
            async move { va.validate(req).await }
        })
        .unary("CheckCaa", move |req: CheckCaaRequest| {
            let va = caa.clone();
            async move { va.check_caa(&req.identifier, &req.check).await }
        })
}

/// A validation authority in another process.
#[derive(Debug, Clone)]
pub struct RemoteVa {
    client: RpcClient,
    name: String,
}

impl RemoteVa {
    /// A client of the VA at `config.url`, called `name` in logs and problems.
    pub fn new(name: impl Into<String>, config: &RpcClientConfig) -> Result<Self, RpcError> {
        Ok(Self {
            client: RpcClient::new(SERVICE, config)?,
            name: name.into(),
        })
    }

    fn unreachable(&self, error: &RpcError) -> Problem {
        tracing::warn!(va = %self.name, %error, "remote VA call failed");
        // The client learns only that this VA could not answer; the transport detail stays in
        // the log.
        Problem::new(
            ProblemType::ServerInternal,
            format!("validation authority {:?} could not be reached", self.name),
        )
    }
}

#[async_trait]
impl ValidationAuthority for RemoteVa {
    async fn validate(&self, req: ValidationRequest) -> ValidationOutcome {
        match self.client.call("Validate", req).await {
            Ok(outcome) => outcome,
            Err(e) => ValidationOutcome {
                records: Vec::new(),
                error: Some(self.unreachable(&e)),
            },
        }
    }

    async fn check_caa(&self, identifier: &Identifier, check: &CaaCheck) -> Result<(), Problem> {
        let req = CheckCaaRequest {
            identifier: identifier.clone(),
            check: check.clone(),
        };
        match self
            .client
            .call::<_, Result<(), Problem>>("CheckCaa", req)
            .await
        {
            Ok(result) => result,
            Err(e) => Err(self.unreachable(&e)),
        }
    }
}
