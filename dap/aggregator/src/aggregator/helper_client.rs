//! The leader's requests to the helper, with the task's bearer token (DAP-18 §3.5): a body
//! back, an empty body meaning the helper deferred (§3.1), or the helper's problem document
//! turned into the same DAP error.

use super::Aggregator;
use crate::error::Error;
use crate::task::AggregatorTask;
use cairn_dap_messages::DapProblemType;

/// A successful answer from the helper.
pub(super) enum HelperReply {
    /// The resource's representation.
    Body(Vec<u8>),
    /// An empty body: the helper deferred handling (DAP-18 §3.1).
    Deferred {
        /// Where the deferred resource is (`Location`).
        location: Option<String>,
        /// When to ask again (`Retry-After`).
        retry_after: Option<String>,
    },
}

/// The DAP problem a helper's error body names, if it is a DAP problem document.
fn problem_of(body: &[u8]) -> Option<DapProblemType> {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("type")
                .and_then(|t| t.as_str())
                .and_then(DapProblemType::from_urn)
        })
}

/// `reference` resolved against `base` (RFC 3986 §5); `None` if either does not parse.
fn resolve_reference(base: &str, reference: &str) -> Option<String> {
    let url = reqwest::Url::parse(base).ok()?.join(reference).ok()?;
    Some(url.into())
}

impl Aggregator {
    /// Sends one request to the helper with the task's bearer token (and, for a taskprov
    /// task, its `dap-taskprov` header).
    pub(super) async fn send_to_helper(
        &self,
        task: &AggregatorTask,
        method: reqwest::Method,
        url: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<HelperReply, Error> {
        let token = task
            .aggregator_auth_token
            .as_ref()
            .ok_or_else(|| Error::Internal("leader task without aggregator token".into()))?;
        let mut req = self
            .inner
            .http
            .request(method, url)
            .bearer_auth(token.expose());
        // A task provisioned in band is advertised to the helper with every request.
        if let Some(advert) = self.taskprov_header(task) {
            req = req.header(cairn_dap_core::taskprov::HEADER, advert);
        }
        if let Some((content_type, body)) = body {
            req = req.header("content-type", content_type).body(body);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| Error::Internal(format!("helper request failed: {e}")))?;
        let status = resp.status();
        let header = |name| {
            resp.headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        // `Location` is a URI reference relative to the URL requested (RFC 9110 §10.2.2);
        // it is resolved here so that what follows sees one absolute URL.
        let (location, retry_after) = (
            header(reqwest::header::LOCATION).and_then(|l| resolve_reference(url, &l)),
            header(reqwest::header::RETRY_AFTER),
        );
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| Error::Internal(format!("helper response: {e}")))?;
        if status.is_success() {
            if bytes.is_empty() {
                return Ok(HelperReply::Deferred {
                    location,
                    retry_after,
                });
            }
            return Ok(HelperReply::Body(bytes.to_vec()));
        }
        match problem_of(&bytes) {
            Some(p) => Err(Error::dap(
                p,
                Some(task.parameters.task_id),
                format!("helper refused ({status})"),
            )),
            None => Err(Error::Internal(format!("helper answered {status}"))),
        }
    }

    /// POSTs to the helper and requires an immediate answer (aggregate shares: the leader
    /// does not poll those).
    pub(super) async fn post_to_helper(
        &self,
        task: &AggregatorTask,
        url: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, Error> {
        match self
            .send_to_helper(task, reqwest::Method::POST, url, Some((content_type, body)))
            .await?
        {
            HelperReply::Body(b) => Ok(b),
            HelperReply::Deferred { .. } => Err(Error::Internal(
                "helper deferred the aggregate share; polling aggregate shares is not implemented"
                    .into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_against_the_request_url() {
        let init = "https://h.example/dap/tasks/T/aggregation_jobs";
        assert_eq!(
            resolve_reference(init, "aggregation_jobs/J?step=0").as_deref(),
            Some("https://h.example/dap/tasks/T/aggregation_jobs/J?step=0")
        );
        let job = "https://h.example/dap/tasks/T/aggregation_jobs/J";
        assert_eq!(
            resolve_reference(job, "J?step=0").as_deref(),
            Some("https://h.example/dap/tasks/T/aggregation_jobs/J?step=0")
        );
        assert_eq!(
            resolve_reference(job, "/tasks/T/aggregation_jobs/J").as_deref(),
            Some("https://h.example/tasks/T/aggregation_jobs/J")
        );
        assert_eq!(resolve_reference(job, "http://[::1"), None);
        assert_eq!(resolve_reference("not a url", "J"), None);
    }

    #[test]
    fn only_dap_problem_documents_name_a_problem() {
        let doc = format!(r#"{{"type": "{}"}}"#, DapProblemType::BatchMismatch.urn());
        assert_eq!(
            problem_of(doc.as_bytes()),
            Some(DapProblemType::BatchMismatch)
        );
        assert_eq!(problem_of(br#"{"type": "about:blank"}"#), None);
        assert_eq!(problem_of(br#"{"title": "x"}"#), None);
        assert_eq!(problem_of(b"<html>"), None);
    }
}
