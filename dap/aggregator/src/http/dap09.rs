//! The DAP-09 edge of the HTTP API, for tasks whose `protocol` is `dap-09` (what `janus_client`
//! and `janus_collector` 0.7 and `@divviup/dap` 0.9 speak): the HPKE configuration endpoint
//! with `?task_id=`, DAP-09's media type and CORS; one report per upload (`PUT
//! /tasks/{task}/reports`, or a `POST` of an `application/dap-report`); collection jobs
//! created with `PUT` at the collector's ID and polled with `POST`. The handlers hand the
//! bodies to the aggregator's DAP-09 methods, which convert them and run the shared pipeline;
//! a message of the other protocol is refused there, before anything is stored.

use super::{AppState, bearer, body_response, task_id};
use crate::aggregator::Dap09Poll;
use crate::error::Error;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cairn_dap_messages::{CollectionJobId, dap09, media_type};

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

/// Whether the request's `Content-Type` is `media_type` (parameters ignored).
pub(super) fn has_media_type(headers: &HeaderMap, media_type: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().unwrap_or("").trim() == media_type)
}

/// Whether a `POST` to the upload route carries a DAP-09 report (by its media type).
pub(super) fn is_dap09_report(headers: &HeaderMap) -> bool {
    has_media_type(headers, dap09::media_type::REPORT)
}

/// `PUT /tasks/{task}/aggregation_jobs/{job}`: a DAP-09 leader's aggregation job (helper),
/// answered synchronously with the DAP-09 `AggregationJobResp`.
pub(super) async fn aggregation_job_init(
    State(s): State<AppState>,
    Path((task, _job)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Error> {
    let task_id = task_id(&task)?;
    let resp = s
        .aggregator
        .handle_dap09_aggregation_job_init(&task_id, bearer(&headers), &body)
        .await?;
    Ok(body_response(
        StatusCode::OK,
        dap09::media_type::AGGREGATION_JOB_RESP,
        resp,
    ))
}

/// `PUT /tasks/{task}/reports`, DAP-09's upload of one report to a `dap-09` task.
pub(super) async fn upload(
    State(s): State<AppState>,
    Path(task): Path<String>,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    body: Bytes,
) -> Result<Response, Error> {
    let task_id = task_id(&task)?;
    let source = peer.map(|axum::Extension(axum::extract::ConnectInfo(addr))| addr.ip());
    s.aggregator
        .handle_dap09_upload(&task_id, &body, source)
        .await?;
    Ok(StatusCode::OK.into_response())
}

/// `OPTIONS /tasks/{task}/reports`: the CORS preflight a browser sends before `@divviup/dap`
/// uploads from a web page (any origin may upload, as Divvi Up's service allows).
pub(super) async fn upload_preflight() -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("PUT, POST"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    resp
}

/// Every answer of the upload route may be read by a page of any origin (its problem
/// documents too, so a browser client sees why a report was refused).
pub(super) async fn allow_any_origin(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    resp
}

/// `PUT /tasks/{task}/collection_jobs/{job}`: a DAP-09 collector creates its job (`201`).
pub(super) async fn create_collection_job(
    State(s): State<AppState>,
    Path((task, job)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Error> {
    let task_id = task_id(&task)?;
    let job_id: CollectionJobId = job
        .parse()
        .map_err(|_| Error::invalid_message(&task_id, "malformed collection job ID"))?;
    s.aggregator
        .handle_dap09_create_collection_job(&task_id, &job_id, bearer(&headers), &body)
        .await?;
    Ok(StatusCode::CREATED.into_response())
}

/// `POST /tasks/{task}/collection_jobs/{job}`: a DAP-09 collector polls (`202` until the
/// `Collection` is ready, then `200` with it).
pub(super) async fn poll_collection_job(
    State(s): State<AppState>,
    Path((task, job)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let task_id = task_id(&task)?;
    let job_id: CollectionJobId = job.parse().map_err(|_| Error::NotFound)?;
    match s
        .aggregator
        .handle_dap09_poll_collection_job(&task_id, &job_id, bearer(&headers))
        .await?
    {
        Dap09Poll::Finished(body) => Ok(body_response(
            StatusCode::OK,
            dap09::media_type::COLLECTION,
            body,
        )),
        _ => {
            let mut resp = StatusCode::ACCEPTED.into_response();
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            Ok(resp)
        }
    }
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
