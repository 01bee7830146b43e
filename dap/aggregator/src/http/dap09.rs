//! The DAP-09 edge of the HTTP API: what a DAP-09 client (`janus_client` 0.7, `@divviup/dap`
//! 0.9) sends to Cairn today gets an answer it understands. The HPKE configuration endpoint
//! serves DAP-09 clients in full (`?task_id=`, their media type, CORS); every task still speaks
//! DAP-18, so a DAP-09 upload — `PUT /tasks/{task}/reports`, or a `POST` of an
//! `application/dap-report` — is refused with a problem document naming the task's protocol
//! before anything is read or stored. The per-task protocol that will route such uploads into
//! the shared report pipeline is designed in `docs/dap-divergences.md`.

use super::{AppState, task_id};
use crate::error::Error;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use cairn_dap_messages::{DapProblemType, TaskId, dap09, media_type};

/// The media type to answer `GET /hpke_config` with: DAP-09's when the client asks for it in
/// `Accept` (`@divviup/dap` refuses any other `Content-Type`), DAP-18's otherwise. The body is
/// the same `HpkeConfigList` in both drafts.
pub(super) fn hpke_config_media_type(headers: &HeaderMap) -> &'static str {
    let wants_dap09 = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.split(';').next().unwrap_or("").trim() == dap09::media_type::HPKE_CONFIG_LIST);
    if wants_dap09 {
        dap09::media_type::HPKE_CONFIG_LIST
    } else {
        media_type::HPKE_CONFIG_LIST
    }
}

/// The `task_id` query parameter DAP-09 clients add to `GET /hpke_config`, if present.
pub(super) fn hpke_config_task(query: Option<&str>) -> Option<&str> {
    query?.split('&').find_map(|kv| kv.strip_prefix("task_id="))
}

/// Whether a `POST` to the upload route carries a DAP-09 report (by its media type).
pub(super) fn is_dap09_report(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().unwrap_or("").trim() == dap09::media_type::REPORT)
}

/// The refusal of a DAP-09 upload to a task that speaks DAP-18.
pub(super) fn dap18_task_refuses_dap09(task_id: &TaskId) -> Error {
    Error::dap(
        DapProblemType::InvalidMessage,
        Some(*task_id),
        format!(
            "this task speaks dap-18, and this is a {} upload: send reports with POST as {}",
            dap09::PROTOCOL,
            media_type::UPLOAD_REQ
        ),
    )
}

/// `PUT /tasks/{task}/reports`, DAP-09's upload: an unknown task is `unrecognizedTask`; a
/// DAP-18 task (every task, for now) refuses it. The body is not read.
pub(super) async fn upload(
    State(s): State<AppState>,
    Path(task): Path<String>,
    _body: Bytes,
) -> Result<Response, Error> {
    let task_id = task_id(&task)?;
    s.aggregator.task_in_role(&task_id).await?;
    Err(dap18_task_refuses_dap09(&task_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(name: header::HeaderName, value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn hpke_config_media_type_follows_accept() {
        let dap09 = dap09::media_type::HPKE_CONFIG_LIST;
        assert_eq!(
            hpke_config_media_type(&HeaderMap::new()),
            media_type::HPKE_CONFIG_LIST
        );
        assert_eq!(
            hpke_config_media_type(&headers(header::ACCEPT, "application/dap-hpke-config-list")),
            dap09
        );
        assert_eq!(
            hpke_config_media_type(&headers(
                header::ACCEPT,
                "text/html, application/dap-hpke-config-list;q=0.9"
            )),
            dap09
        );
        assert_eq!(
            hpke_config_media_type(&headers(header::ACCEPT, "*/*")),
            media_type::HPKE_CONFIG_LIST
        );
    }

    #[test]
    fn the_task_id_parameter_is_found() {
        assert_eq!(hpke_config_task(None), None);
        assert_eq!(hpke_config_task(Some("x=1")), None);
        assert_eq!(hpke_config_task(Some("x=1&task_id=abc")), Some("abc"));
    }

    #[test]
    fn dap09_reports_are_told_by_media_type() {
        assert!(is_dap09_report(&headers(
            header::CONTENT_TYPE,
            "application/dap-report"
        )));
        assert!(!is_dap09_report(&headers(
            header::CONTENT_TYPE,
            "application/ppm-dap;message=upload-req"
        )));
        assert!(!is_dap09_report(&HeaderMap::new()));
    }
}
