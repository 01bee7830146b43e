//! Taskprov (draft-ietf-ppm-dap-taskprov) mapped onto DAP-18, as Cairn defines it until a
//! revision of the draft targets DAP-18 (see `docs/dap-divergences.md`, "Taskprov"):
//!
//! - The advertised task configuration is DAP-18's own `TaskConfiguration` (§4.2: task info,
//!   both endpoints, time precision, minimum batch size, batch mode and its configuration, VDAF
//!   type and configuration, task extensions), sent unpadded base64url in the `dap-taskprov`
//!   header. It carries everything the draft's `TaskConfig` did except the draft's DP
//!   configuration, which in Cairn is each aggregator's own setting.
//! - Task ID: `SHA-256(SHA-256("dap-taskprov task id") || TaskConfiguration)`, as the draft.
//! - VDAF verification key: `HKDF-Expand(HKDF-Extract(SHA-256("dap-taskprov"),
//!   verify_key_init), task_id, VERIFY_KEY_SIZE)` with SHA-256, as the draft.
//! - The `taskbind` report extension (`0xff00`, empty) is accepted on such tasks.
//!
//! No I/O: the aggregator decides whether to opt in.

use crate::task::{TaskError, TaskParameters};
use crate::vdaf::{VERIFY_KEY_LEN, VdafInstance, VerifyKey};
use aws_lc_rs::{digest, hkdf};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cairn_dap_messages::{BatchMode, Decode, Encode, Extension, TaskConfiguration, TaskId};

/// The HTTP header that advertises a task.
pub const HEADER: &str = "dap-taskprov";

/// The `taskbind` report extension's codepoint (the draft's placeholder value).
pub const TASKBIND_EXTENSION: u16 = 0xff00;

/// The longest vector, histogram or bit vector a task provisioned in band may have: a peer's
/// advertisement alone cannot make the aggregators prepare huge proofs.
pub const MAX_LENGTH: u32 = 100_000;

/// Why an advertised task cannot be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TaskprovError {
    /// The header is not base64url of a `TaskConfiguration`.
    #[error("the dap-taskprov header is not a TaskConfiguration: {0}")]
    Malformed(String),
    /// The request's task ID is not the one derived from the configuration.
    #[error("the task ID is not derived from the advertised configuration")]
    TaskIdMismatch,
    /// The configuration names something this implementation does not support.
    #[error("unsupported task: {0}")]
    Unsupported(String),
}

/// The task ID derived from an encoded `TaskConfiguration`.
pub fn task_id(encoded_configuration: &[u8]) -> TaskId {
    let label = digest::digest(&digest::SHA256, b"dap-taskprov task id");
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(label.as_ref());
    ctx.update(encoded_configuration);
    let mut id = [0u8; 32];
    id.copy_from_slice(ctx.finish().as_ref());
    TaskId::from_bytes(id)
}

/// The VDAF verification key of task `task_id` from the aggregators' shared secret.
pub fn verify_key(verify_key_init: &[u8; 32], task_id: &TaskId) -> VerifyKey {
    let salt = digest::digest(&digest::SHA256, b"dap-taskprov");
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt.as_ref()).extract(verify_key_init);
    let info = [task_id.as_bytes().as_slice()];
    let mut key = [0u8; VERIFY_KEY_LEN];
    // 32 bytes is far under HKDF-SHA256's 255 × 32 limit: neither step can fail.
    if let Ok(okm) = prk.expand(&info, hkdf::HKDF_SHA256) {
        let _ = okm.fill(&mut key);
    }
    key
}

/// A task as advertised: its derived ID, the configuration and the parameters it maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvertisedTask {
    /// The derived task ID.
    pub task_id: TaskId,
    /// The configuration, encoded as sent.
    pub encoded: Vec<u8>,
    /// The task parameters it maps to.
    pub parameters: TaskParameters,
}

/// The `dap-taskprov` header value of encoded configuration bytes.
pub fn encode_header(encoded_configuration: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(encoded_configuration)
}

/// The bytes of a `dap-taskprov` header value (unpadded base64url).
pub fn decode_header(value: &[u8]) -> Result<Vec<u8>, TaskprovError> {
    URL_SAFE_NO_PAD
        .decode(value)
        .map_err(|e| TaskprovError::Malformed(e.to_string()))
}

/// Reads a `dap-taskprov` header value sent with a request for `request_task_id`.
pub fn read_header(
    value: &[u8],
    request_task_id: &TaskId,
) -> Result<AdvertisedTask, TaskprovError> {
    let encoded = decode_header(value)?;
    let config = TaskConfiguration::get_decoded(&encoded)
        .map_err(|e| TaskprovError::Malformed(e.to_string()))?;
    let id = task_id(&encoded);
    if id != *request_task_id {
        return Err(TaskprovError::TaskIdMismatch);
    }
    let parameters = parameters(id, &config)?;
    Ok(AdvertisedTask {
        task_id: id,
        encoded,
        parameters,
    })
}

/// The header value that advertises `params` (whose task ID must be the derived one).
pub fn header_value(params: &TaskParameters) -> Result<String, TaskError> {
    Ok(encode_header(&encoded_configuration(params)?))
}

/// The encoded `TaskConfiguration` of `params`.
pub fn encoded_configuration(params: &TaskParameters) -> Result<Vec<u8>, TaskError> {
    params
        .task_configuration()?
        .get_encoded()
        .map_err(|_| TaskError::Encode)
}

/// Whether `params`' task ID is the one derived from its configuration: a taskprov task.
pub fn is_taskprov_task(params: &TaskParameters) -> bool {
    encoded_configuration(params).is_ok_and(|e| task_id(&e) == params.task_id)
}

/// Makes `params` a taskprov task: its ID becomes the derived one.
pub fn with_derived_task_id(mut params: TaskParameters) -> Result<TaskParameters, TaskError> {
    params.task_id = task_id(&encoded_configuration(&params)?);
    Ok(params)
}

/// The task parameters a `TaskConfiguration` maps to.
pub fn parameters(
    task_id: TaskId,
    config: &TaskConfiguration,
) -> Result<TaskParameters, TaskprovError> {
    let unsupported = |what: &str| TaskprovError::Unsupported(what.to_owned());
    let text =
        |bytes: &[u8], what: &str| String::from_utf8(bytes.to_vec()).map_err(|_| unsupported(what));
    if !config.batch_config.is_empty() {
        return Err(unsupported(
            "a batch mode configuration (DAP-18 defines none)",
        ));
    }
    if !matches!(
        config.batch_mode,
        BatchMode::TimeInterval | BatchMode::LeaderSelected
    ) {
        return Err(unsupported("the batch mode"));
    }
    if let Some(e) = config
        .extensions
        .iter()
        .find(|e| e.extension_type != Extension::TASK_INTERVAL)
    {
        return Err(TaskprovError::Unsupported(format!(
            "task extension {}",
            e.extension_type
        )));
    }
    let task_interval = match config
        .extensions
        .iter()
        .find(|e| e.extension_type == Extension::TASK_INTERVAL)
    {
        Some(_) => Some(
            config
                .task_interval()
                .ok_or_else(|| unsupported("a malformed task interval"))?,
        ),
        None => None,
    };
    let vdaf = VdafInstance::from_configuration(config.vdaf_type, &config.vdaf_configuration)
        .ok_or_else(|| unsupported("the VDAF or its configuration"))?;
    let length = match &vdaf {
        VdafInstance::Prio3SumVec { length, .. }
        | VdafInstance::Prio3Histogram { length, .. }
        | VdafInstance::Prio3MultihotCountVec { length, .. } => *length,
        _ => 1,
    };
    if length > MAX_LENGTH {
        return Err(TaskprovError::Unsupported(format!(
            "a measurement of {length} entries (at most {MAX_LENGTH} by taskprov)"
        )));
    }
    let params = TaskParameters {
        task_id,
        leader_endpoint: text(&config.leader_aggregator_endpoint, "a leader endpoint")?,
        helper_endpoint: text(&config.helper_aggregator_endpoint, "a helper endpoint")?,
        time_precision: config.time_precision.0,
        min_batch_size: config.min_batch_size,
        batch_mode: config.batch_mode,
        vdaf,
        task_info: text(&config.task_info, "task info that is not UTF-8")?,
        task_interval,
        max_batch_size: None,
        differential_privacy: None,
        protocol: Default::default(),
    };
    params
        .validate()
        .map_err(|e| TaskprovError::Unsupported(e.to_string()))?;
    // The mapping must be exact: re-encoding gives the advertised bytes back (so both
    // aggregators bind the same configuration into every AAD).
    let again = params
        .task_configuration()
        .map_err(|e| TaskprovError::Unsupported(e.to_string()))?;
    if again != *config {
        return Err(unsupported(
            "a configuration that does not re-encode identically",
        ));
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use cairn_dap_messages::{Duration, Interval, Time};

    fn params() -> TaskParameters {
        with_derived_task_id(TaskParameters {
            task_id: TaskId::from_bytes([0; 32]),
            leader_endpoint: "https://leader.example/".into(),
            helper_endpoint: "https://helper.example/".into(),
            time_precision: 3600,
            min_batch_size: 100,
            batch_mode: BatchMode::TimeInterval,
            vdaf: VdafInstance::Prio3Histogram {
                length: 4,
                chunk_length: 2,
            },
            task_info: "metrics".into(),
            task_interval: Interval::new(Time(480_000), Duration(720)),
            max_batch_size: None,
            differential_privacy: None,
            protocol: Default::default(),
        })
        .unwrap()
    }

    #[test]
    fn the_task_id_is_the_hash_of_the_label_hash_and_the_configuration() {
        let p = params();
        let encoded = encoded_configuration(&p).unwrap();
        let label = digest::digest(&digest::SHA256, b"dap-taskprov task id");
        let mut joined = label.as_ref().to_vec();
        joined.extend(&encoded);
        let expect = digest::digest(&digest::SHA256, &joined);
        assert_eq!(p.task_id.as_bytes().as_slice(), expect.as_ref());
        assert!(is_taskprov_task(&p));
        let mut other = p.clone();
        other.task_id = TaskId::from_bytes([1; 32]);
        assert!(!is_taskprov_task(&other));
    }

    #[test]
    fn the_verify_key_is_hkdf_of_the_shared_secret_and_the_task_id() {
        // RFC 5869 by hand with HMAC-SHA256: PRK = HMAC(salt, IKM); T(1) = HMAC(PRK, info || 1).
        use aws_lc_rs::hmac;
        let init = [7u8; 32];
        let id = params().task_id;
        let salt = digest::digest(&digest::SHA256, b"dap-taskprov");
        let prk = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, salt.as_ref()), &init);
        let mut t1 = id.as_bytes().to_vec();
        t1.push(1);
        let okm = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, prk.as_ref()), &t1);
        assert_eq!(verify_key(&init, &id).as_slice(), okm.as_ref());
        assert_ne!(verify_key(&[8; 32], &id), verify_key(&init, &id));
    }

    #[test]
    fn a_header_maps_back_to_the_same_parameters() {
        let p = params();
        let header = header_value(&p).unwrap();
        let read = read_header(header.as_bytes(), &p.task_id).unwrap();
        assert_eq!(read.parameters, p);
        assert_eq!(
            read_header(header.as_bytes(), &TaskId::from_bytes([3; 32])),
            Err(TaskprovError::TaskIdMismatch)
        );
        assert!(matches!(
            read_header(b"%%%", &p.task_id),
            Err(TaskprovError::Malformed(_))
        ));
        assert!(matches!(
            read_header(b"AAAA", &p.task_id),
            Err(TaskprovError::Malformed(_))
        ));
    }

    #[test]
    fn unknown_vdafs_extensions_and_batch_configs_are_unsupported() {
        let p = params();
        let base = p.task_configuration().unwrap();
        let id = |c: &TaskConfiguration| task_id(&c.get_encoded().unwrap());
        let mut c = base.clone();
        c.vdaf_type = 0xffff_0000;
        assert!(matches!(
            parameters(id(&c), &c),
            Err(TaskprovError::Unsupported(_))
        ));
        let mut c = base.clone();
        c.extensions.push(Extension {
            extension_type: 0x7777,
            extension_data: vec![],
        });
        assert!(matches!(
            parameters(id(&c), &c),
            Err(TaskprovError::Unsupported(_))
        ));
        let mut c = base.clone();
        c.batch_config = vec![1];
        assert!(matches!(
            parameters(id(&c), &c),
            Err(TaskprovError::Unsupported(_))
        ));
        let mut c = base;
        c.min_batch_size = 0;
        assert!(matches!(
            parameters(id(&c), &c),
            Err(TaskprovError::Unsupported(_))
        ));
    }
}
