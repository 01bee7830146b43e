//! The DAP interoperation test API (draft-dcook-ppm-dap-interop-test-design, with the
//! extensions Janus uses: string-encoded numbers, `max_measurement`, `batch_mode`,
//! `task_start`/`task_end`, the helper URL in the collector's `add_task`), so a test runner can
//! pair Cairn with any implementation in any role.
//!
//! Each role is a small axum server (`cairn dap interop-client|interop-aggregator|
//! interop-collector` runs them). Every answer is `200` with a JSON object whose `status` is `success`
//! (or `complete` / `in progress` when polling) or `error` with an `error` text: a bad request
//! is an `error` answer, never a panic. The interop aggregator serves the DAP API on the same
//! port, at `/`: one process is leader for some tasks and helper for others (two
//! [`Aggregator`]s over one datastore, so one HPKE key set; each only sees tasks of its role).
//!
//! The API has no `task_info`, so all three roles use [`INTEROP_TASK_INFO`] (Janus' value), which
//! keeps the `TaskConfiguration` in the AADs identical on every party.

mod aggregator;
mod client;
mod collector;

pub use aggregator::{InteropAggregator, run_aggregator};
pub use client::client_router;
pub use collector::collector_router;

use axum::body::Bytes;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cairn_dap_core::{Protocol, TaskParameters, VdafInstance};
use cairn_dap_messages::{BatchMode, Duration, Interval, TaskId, Time};
use serde_json::{Map, Value, json};
use std::future::Future;
use std::net::SocketAddr;

/// The `task_info` every Cairn interop role binds into the `TaskConfiguration` (the interop API
/// does not carry one; this is the value Janus' interop binaries use).
pub const INTEROP_TASK_INFO: &str = "task-info";

/// The port the draft has every test container listen on.
pub const DEFAULT_PORT: u16 = 8080;

/// Why a role could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InteropError {
    /// The HTTP client the client and collector roles send with could not be built.
    #[error("building the HTTP client")]
    HttpClient(#[source] reqwest::Error),
    /// No fresh datastore key could be made for the aggregator.
    #[error("datastore key")]
    DatastoreKey(#[source] cairn_dap_aggregator::datastore::KeyError),
    /// The aggregator's datastore could not be opened.
    #[error("opening the DAP datastore")]
    Datastore(#[source] cairn_dap_aggregator::DatastoreError),
    /// A leader or helper could not start over the datastore.
    #[error("starting the aggregator")]
    Aggregator(#[source] cairn_dap_aggregator::Error),
    /// The temporary directory of the default datastore could not be created.
    #[error("creating a temporary directory")]
    TempDir(#[source] std::io::Error),
    /// The port could not be listened on.
    #[error("cannot listen on {addr}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Serving stopped with an I/O error.
    #[error("serving the interop API")]
    Serve(#[source] std::io::Error),
}

/// A request the interop API refuses, with the text for its `error` field.
#[derive(Debug)]
struct ApiError(String);

impl<E: std::fmt::Display> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.to_string())
    }
}

type ApiResult = Result<Map<String, Value>, ApiError>;

/// `{"status": "success", …fields}` or `{"status": "error", "error": …}`, always `200` (the
/// draft's runners read the status from the body).
fn answer(result: ApiResult) -> Response {
    match result {
        Ok(mut fields) => {
            fields
                .entry("status")
                .or_insert_with(|| Value::from("success"));
            Json(Value::Object(fields)).into_response()
        }
        Err(ApiError(e)) => {
            tracing::info!(error = %e, "interop request refused");
            Json(json!({ "status": "error", "error": e })).into_response()
        }
    }
}

fn parse_body(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError("the request body must be a JSON object".into())),
        Err(e) => Err(ApiError(format!("the request body is not JSON: {e}"))),
    }
}

/// A number written either as a JSON number or as a decimal string (Janus sends strings).
fn number(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Field accessors over a request object, with errors naming the field.
struct Fields<'a>(&'a Map<String, Value>, &'static str);

impl Fields<'_> {
    fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    fn str(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError(format!("{}: \"{name}\" must be a string", self.1)))
    }

    fn u64(&self, name: &str) -> Result<u64, ApiError> {
        self.opt_u64(name)?
            .ok_or_else(|| ApiError(format!("{}: \"{name}\" is missing", self.1)))
    }

    fn opt_u64(&self, name: &str) -> Result<Option<u64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => number(v).map(Some).ok_or_else(|| {
                ApiError(format!(
                    "{}: \"{name}\" must be a non-negative integer",
                    self.1
                ))
            }),
        }
    }

    fn u32(&self, name: &str) -> Result<u32, ApiError> {
        u32::try_from(self.u64(name)?)
            .map_err(|_| ApiError(format!("{}: \"{name}\" is too large", self.1)))
    }

    fn base64(&self, name: &str) -> Result<Vec<u8>, ApiError> {
        URL_SAFE_NO_PAD
            .decode(self.str(name)?.trim_end_matches('='))
            .map_err(|_| ApiError(format!("{}: \"{name}\" is not base64url", self.1)))
    }

    fn task_id(&self) -> Result<TaskId, ApiError> {
        self.str("task_id")?
            .trim_end_matches('=')
            .parse()
            .map_err(|_| ApiError("\"task_id\" is not 32 bytes of base64url".into()))
    }

    fn endpoint(&self, name: &str) -> Result<String, ApiError> {
        let url = self.str(name)?;
        url::Url::parse(url)
            .map_err(|_| ApiError(format!("\"{name}\" is not a URL")))
            .map(|_| url.to_string())
    }

    /// `batch_mode` (Janus) or `query_type` (earlier drafts): 1 time-interval, 2 leader-selected.
    fn batch_mode(&self) -> Result<BatchMode, ApiError> {
        let code = match self.opt_u64("batch_mode")? {
            Some(c) => c,
            None => self.u64("query_type")?,
        };
        u8::try_from(code)
            .ok()
            .and_then(|c| BatchMode::from_code(c).ok())
            .ok_or_else(|| {
                ApiError(format!(
                    "unsupported batch mode {code} (1: time-interval, 2: leader-selected)"
                ))
            })
    }
}

/// The interop API's VDAF object (`{"type": "Prio3Count"}`, `{"type": "Prio3Sum",
/// "max_measurement": "255"}`, …) as a [`VdafInstance`]. `bits` (earlier drafts) stands for
/// `max_measurement = 2^bits - 1`.
fn vdaf_from_json(v: Option<&Value>) -> Result<VdafInstance, ApiError> {
    let obj = v
        .and_then(Value::as_object)
        .ok_or_else(|| ApiError("\"vdaf\" must be an object".into()))?;
    let f = Fields(obj, "vdaf");
    let max_measurement = || -> Result<u64, ApiError> {
        match (f.opt_u64("max_measurement")?, f.opt_u64("bits")?) {
            (Some(m), _) => Ok(m),
            (None, Some(bits)) if (1..=64).contains(&bits) => Ok(u64::MAX >> (64 - bits)),
            (None, Some(_)) => Err(ApiError("vdaf: \"bits\" must be 1 to 64".into())),
            (None, None) => Err(ApiError("vdaf: \"max_measurement\" is missing".into())),
        }
    };
    let vdaf = match f.str("type")? {
        "Prio3Count" => VdafInstance::Prio3Count,
        "Prio3Sum" => VdafInstance::Prio3Sum {
            max_measurement: max_measurement()?,
        },
        "Prio3SumVec" => VdafInstance::Prio3SumVec {
            length: f.u32("length")?,
            max_measurement: max_measurement()?,
            chunk_length: f.u32("chunk_length")?,
        },
        "Prio3Histogram" => VdafInstance::Prio3Histogram {
            length: f.u32("length")?,
            chunk_length: f.u32("chunk_length")?,
        },
        "Prio3MultihotCountVec" => VdafInstance::Prio3MultihotCountVec {
            length: f.u32("length")?,
            chunk_length: f.u32("chunk_length")?,
            max_weight: f.u64("max_weight")?,
        },
        other => return Err(ApiError(format!("unsupported VDAF type {other:?}"))),
    };
    vdaf.validate()?;
    Ok(vdaf)
}

/// The task parameters every role derives from an interop request. `min_batch_size` and the
/// task interval are bound into the `TaskConfiguration`, so every role must be given the same:
/// `min_batch_size` is required, and a task interval given to the aggregators must also be
/// given to the client and collector (Cairn's take `task_start`/`task_end` too).
fn task_parameters(f: &Fields<'_>) -> Result<TaskParameters, ApiError> {
    let task_id = f.task_id()?;
    let batch_mode = f.batch_mode()?;
    let time_precision = f.u64("time_precision")?;
    let params = TaskParameters {
        task_id,
        leader_endpoint: f.endpoint("leader")?,
        helper_endpoint: f.endpoint("helper")?,
        time_precision,
        min_batch_size: f.u64("min_batch_size")?,
        batch_mode,
        vdaf: vdaf_from_json(f.get("vdaf"))?,
        task_info: INTEROP_TASK_INFO.into(),
        task_interval: task_interval(f, time_precision)?,
        max_batch_size: match batch_mode {
            BatchMode::LeaderSelected => f.opt_u64("max_batch_size")?,
            _ => None,
        },
        differential_privacy: None,
        protocol: protocol(f)?,
    };
    Ok(params)
}

/// Cairn's extension: `"protocol": "dap-09"` makes the task a DAP-09 one (default `dap-18`).
fn protocol(f: &Fields<'_>) -> Result<Protocol, ApiError> {
    match f.get("protocol") {
        None => Ok(Protocol::Dap18),
        Some(v) => v
            .as_str()
            .ok_or_else(|| ApiError("\"protocol\" must be a string".into()))?
            .parse()
            .map_err(ApiError),
    }
}

/// `task_start`/`task_end` (Janus) or `task_expiration` (the draft), POSIX seconds, as the task
/// interval in time-precision units: from the unit holding the start to the end rounded up.
fn task_interval(f: &Fields<'_>, precision: u64) -> Result<Option<Interval>, ApiError> {
    let start = f.opt_u64("task_start")?;
    let end = match f.opt_u64("task_end")? {
        Some(e) => Some(e),
        None => f.opt_u64("task_expiration")?,
    };
    let (start, end) = match (start, end) {
        (None, None) => return Ok(None),
        (Some(_), None) => {
            return Err(ApiError(
                "\"task_start\" needs \"task_end\" (or \"task_expiration\")".into(),
            ));
        }
        (start, Some(end)) => (start.unwrap_or(0), end),
    };
    if precision == 0 {
        return Err(ApiError("\"time_precision\" must be positive".into()));
    }
    let (first, last) = (start / precision, end.div_ceil(precision));
    if last <= first {
        return Err(ApiError("the task ends before it starts".into()));
    }
    Ok(Interval::new(Time(first), Duration(last - first)))
}

/// A measurement in the interop API's JSON (a number or decimal string, a bool, or an array of
/// those) in the text form [`VdafInstance::parse_measurement`] reads.
fn measurement_text(v: Option<&Value>) -> Result<String, ApiError> {
    fn scalar(v: &Value) -> Option<String> {
        match v {
            Value::Bool(b) => Some(if *b { "1" } else { "0" }.into()),
            Value::Number(n) => n.as_u64().map(|n| n.to_string()),
            Value::String(s) => s.trim().parse::<u64>().ok().map(|n| n.to_string()),
            _ => None,
        }
    }
    let bad = || ApiError("\"measurement\" must be a number, a string of one, or a list".into());
    match v {
        Some(Value::Array(items)) => Ok(items
            .iter()
            .map(|i| scalar(i).ok_or_else(bad))
            .collect::<Result<Vec<_>, _>>()?
            .join(",")),
        Some(v) => scalar(v).ok_or_else(bad),
        None => Err(ApiError("\"measurement\" is missing".into())),
    }
}

fn http_client() -> Result<reqwest::Client, InteropError> {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(InteropError::HttpClient)
}

async fn ready() -> Response {
    Json(json!({})).into_response()
}

// ---- serving ----

/// Serves `router` on `0.0.0.0:port` until `shutdown` resolves (the binary passes its
/// SIGINT/SIGTERM future).
pub async fn serve(
    router: Router,
    port: u16,
    what: &str,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), InteropError> {
    let addr = SocketAddr::from(([0, 0, 0, 0], port));
    let listen_error = |source| InteropError::Listen { addr, source };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(listen_error)?;
    let bound = listener.local_addr().map_err(listen_error)?;
    tracing::info!(addr = %bound, role = what, "DAP interop API listening");
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(InteropError::Serve)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn vdaf_objects_take_numbers_or_strings_and_bits() {
        let v = vdaf_from_json(Some(&json!({"type": "Prio3Sum", "max_measurement": "255"})));
        assert_eq!(
            v.unwrap(),
            VdafInstance::Prio3Sum {
                max_measurement: 255
            }
        );
        let v = vdaf_from_json(Some(
            &json!({"type": "Prio3SumVec", "bits": 8, "length": "4", "chunk_length": 2}),
        ));
        assert_eq!(
            v.unwrap(),
            VdafInstance::Prio3SumVec {
                length: 4,
                max_measurement: 255,
                chunk_length: 2
            }
        );
        assert!(vdaf_from_json(Some(&json!({"type": "Poplar1", "bits": 8}))).is_err());
        assert!(vdaf_from_json(Some(&json!({"type": "Prio3Histogram", "length": 4}))).is_err());
        assert!(vdaf_from_json(Some(&json!("Prio3Count"))).is_err());
    }

    #[test]
    fn measurements_become_the_text_form() {
        assert_eq!(measurement_text(Some(&json!("1"))).unwrap(), "1");
        assert_eq!(measurement_text(Some(&json!(7))).unwrap(), "7");
        assert_eq!(
            measurement_text(Some(&json!(["1", 2, true]))).unwrap(),
            "1,2,1"
        );
        assert!(measurement_text(Some(&json!({"a": 1}))).is_err());
        assert!(measurement_text(Some(&json!("-1"))).is_err());
        assert!(measurement_text(None).is_err());
    }

    #[test]
    fn task_interval_rounds_outwards_and_refuses_inverted_bounds() {
        let req = json!({"task_start": 3700, "task_end": 7300});
        let f = Fields(req.as_object().unwrap(), "t");
        assert_eq!(
            task_interval(&f, 3600).unwrap(),
            Some(Interval {
                start: Time(1),
                duration: Duration(2)
            })
        );
        let req = json!({"task_start": 7300, "task_end": 100});
        assert!(task_interval(&Fields(req.as_object().unwrap(), "t"), 3600).is_err());
        let req = json!({"task_start": 7300});
        assert!(task_interval(&Fields(req.as_object().unwrap(), "t"), 3600).is_err());
        let req = json!({});
        assert_eq!(
            task_interval(&Fields(req.as_object().unwrap(), "t"), 3600).unwrap(),
            None
        );
    }
}
