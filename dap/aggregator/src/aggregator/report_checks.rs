//! The checks DAP-18 makes on each report — at upload (§4.4.2.2) and when an aggregation job
//! initializes it (§4.5.3.3 input share decryption, §4.5.3.4 input share validation) — as pure
//! functions. The task, the keys and the current time come in; the report's verdict comes out:
//! accepted, or the `ReportError` it is refused with. No storage and no clock, so every branch
//! is tested here.
//!
//! The checks that need storage (replay, collected batch buckets) are decided by pure
//! functions in the datastore, next to the statements that read what they need.

use crate::datastore::HpkeKeyState;
use crate::task::AggregatorTask;
use cairn_dap_core::{HpkeApplicationInfo, HpkeKeypair, TaskParameters};
use cairn_dap_messages::{
    Decode, Extension, HpkeCiphertext, PlaintextInputShare, ReportError, ReportMetadata, Time,
    VerifyStepResult,
};

/// Where a report is checked: some refusals have different names at each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Checkpoint {
    /// The leader, at upload (§4.4.2.2).
    Upload,
    /// An aggregator initializing an aggregation job (§4.5.3.3, §4.5.3.4).
    Aggregation,
}

/// The report's time against the current time `now` (POSIX seconds) and the task's interval:
/// more than `skew` seconds ahead is `report_too_early`; outside the task interval is
/// `report_dropped` at upload, `task_not_started` or `task_expired` at aggregation.
pub(super) fn check_time(
    params: &TaskParameters,
    time: Time,
    now: u64,
    skew: u64,
    at: Checkpoint,
) -> Result<(), ReportError> {
    let seconds = time
        .to_seconds(params.precision())
        .ok_or(ReportError::InvalidMessage)?;
    if seconds > now.saturating_add(skew) {
        return Err(ReportError::ReportTooEarly);
    }
    if let Some(interval) = params.task_interval {
        if time < interval.start {
            return Err(match at {
                Checkpoint::Upload => ReportError::ReportDropped,
                Checkpoint::Aggregation => ReportError::TaskNotStarted,
            });
        }
        if time >= interval.end() {
            return Err(match at {
                Checkpoint::Upload => ReportError::ReportDropped,
                Checkpoint::Aggregation => ReportError::TaskExpired,
            });
        }
    }
    Ok(())
}

/// Whether the report of `time` is too old for the task at `now` (seconds): older than its
/// report expiry age, its replay record may already be deleted, so it is refused
/// (`report_dropped`, both at upload and at the helper's aggregation) rather than risk
/// counting it twice.
pub(super) fn check_expiry(task: &AggregatorTask, time: Time, now: u64) -> Result<(), ReportError> {
    match task.expiry_cutoff(now) {
        Some(cutoff) if time.0 < cutoff => Err(ReportError::ReportDropped),
        _ => Ok(()),
    }
}

/// The keypair an input share was sealed to, if this aggregator still holds it in any state
/// (pending and expired keys still decrypt, so rotation drops no report in flight). An unknown
/// config ID is `outdated_config` at upload (the client should refetch the configuration) and
/// `hpke_decrypt_error` at aggregation.
pub(super) fn keypair_for<'k>(
    keys: &'k [(HpkeKeypair, HpkeKeyState)],
    ct: &HpkeCiphertext,
    at: Checkpoint,
) -> Result<&'k HpkeKeypair, ReportError> {
    keys.iter()
        .map(|(k, _)| k)
        .find(|k| k.config().id == ct.config_id)
        .ok_or(match at {
            Checkpoint::Upload => ReportError::OutdatedConfig,
            Checkpoint::Aggregation => ReportError::HpkeDecryptError,
        })
}

/// A report's public or private extensions. The only one recognized is taskprov's `taskbind`
/// (empty), on a task provisioned in band (`taskbound()`: its ID is derived from its
/// configuration, so the report's binding holds by construction; asked only when a report
/// carries the extension, which keeps the hashing off the common path); anything else is
/// `invalid_message`.
pub(super) fn check_extensions(
    extensions: &[Extension],
    taskbound: impl Fn() -> bool,
) -> Result<(), ReportError> {
    match extensions {
        [] => Ok(()),
        [e] if e.extension_type == cairn_dap_core::taskprov::TASKBIND_EXTENSION
            && e.extension_data.is_empty()
            && taskbound() =>
        {
            Ok(())
        }
        _ => Err(ReportError::InvalidMessage),
    }
}

/// Opens the input share `ct` of the report `metadata`/`public_share` with `kp` under `info`
/// (who sent it to whom) and decodes it (§4.5.3.3): a ciphertext that does not open is
/// `hpke_decrypt_error`; a plaintext that does not decode, or an AAD that cannot be built, is
/// `invalid_message`.
pub(super) fn open_input_share(
    params: &TaskParameters,
    kp: &HpkeKeypair,
    info: &HpkeApplicationInfo,
    metadata: &ReportMetadata,
    public_share: &[u8],
    ct: &HpkeCiphertext,
) -> Result<PlaintextInputShare, ReportError> {
    let aad = params
        .input_share_aad(metadata, public_share)
        .map_err(|_| ReportError::InvalidMessage)?;
    let plaintext = kp
        .open(info, ct, &aad)
        .map_err(|_| ReportError::HpkeDecryptError)?;
    PlaintextInputShare::get_decoded(&plaintext).map_err(|_| ReportError::InvalidMessage)
}

/// The leader's reading of the helper's answer for one report after initialization: a
/// one-round VDAF continues with the helper's message; a rejection carries the helper's
/// reason; `finish` at this step is not what the VDAF does, so the report fails verification.
pub(super) fn helper_verdict(result: VerifyStepResult) -> Result<Vec<u8>, ReportError> {
    match result {
        VerifyStepResult::Continue(message) => Ok(message),
        VerifyStepResult::Reject(e) => Err(e),
        VerifyStepResult::Finish => Err(ReportError::VdafVerifyError),
    }
}

/// What the tests of the checks and of the steps built on them share: a task and reports
/// sealed to real keys.
#[cfg(test)]
pub(super) mod fixtures {
    use super::*;
    use crate::task::{AggregatorRole, AggregatorTask};
    use cairn_dap_core::hpke::{self, Label};
    use cairn_dap_core::{Measurement, VdafInstance};
    use cairn_dap_messages::{
        BatchMode, Encode, HpkeConfigId, Interval, Report, ReportId, Role, TaskId,
    };

    /// POSIX seconds the fixtures treat as now.
    pub(crate) const NOW: u64 = 1_700_000_000;
    /// The time precision of the fixture task.
    pub(crate) const PRECISION: u64 = 3600;

    /// A leader task counting booleans, with `interval` as its task interval.
    pub(crate) fn task(role: AggregatorRole, interval: Option<Interval>) -> AggregatorTask {
        AggregatorTask {
            parameters: TaskParameters {
                task_id: TaskId::from_bytes([3; 32]),
                leader_endpoint: "https://leader.example/".into(),
                helper_endpoint: "https://helper.example/".into(),
                time_precision: PRECISION,
                min_batch_size: 1,
                batch_mode: BatchMode::TimeInterval,
                vdaf: VdafInstance::Prio3Count,
                task_info: "checks".into(),
                task_interval: interval,
                max_batch_size: None,
                differential_privacy: None,
                protocol: Default::default(),
            },
            role,
            vdaf_verify_key: [7; 32],
            collector_hpke_config: HpkeKeypair::generate(HpkeConfigId(9)).config().clone(),
            aggregator_auth_token: None,
            aggregator_auth_token_hash: None,
            collector_auth_token_hash: None,
            report_expiry_age: None,
        }
    }

    /// The fixture's time unit for `seconds`.
    pub(crate) fn time(seconds: u64) -> Time {
        Time(seconds / PRECISION)
    }

    /// Seals `plaintext` to `kp` as `sender` → `recipient` would for this report.
    pub(crate) fn seal(
        params: &TaskParameters,
        kp: &HpkeKeypair,
        recipient: Role,
        metadata: &ReportMetadata,
        public_share: &[u8],
        plaintext: &PlaintextInputShare,
    ) -> HpkeCiphertext {
        let aad = params.input_share_aad(metadata, public_share).unwrap();
        let info = HpkeApplicationInfo::new(Label::InputShare, Role::Client, recipient);
        hpke::seal(kp.config(), &info, &plaintext.get_encoded().unwrap(), &aad).unwrap()
    }

    /// A client's report of `true` at `time` for the leader key `leader` and helper key
    /// `helper`, with the given extensions.
    pub(crate) fn report(
        params: &TaskParameters,
        leader: &HpkeKeypair,
        helper: &HpkeKeypair,
        time: Time,
        public_extensions: Vec<Extension>,
        private_extensions: Vec<Extension>,
    ) -> Report {
        let id = ReportId::from_bytes([u8::try_from(time.0 % 200).unwrap(); 16]);
        let shards = params
            .vdaf
            .shard(&params.vdaf_ctx(), &Measurement::Count(true), id.as_bytes())
            .unwrap();
        let metadata = ReportMetadata {
            id,
            time,
            public_extensions,
        };
        let share = |payload: Vec<u8>| PlaintextInputShare {
            private_extensions: private_extensions.clone(),
            payload,
        };
        Report {
            leader_encrypted_input_share: seal(
                params,
                leader,
                Role::Leader,
                &metadata,
                &shards.public_share,
                &share(shards.leader_input_share),
            ),
            helper_encrypted_input_share: seal(
                params,
                helper,
                Role::Helper,
                &metadata,
                &shards.public_share,
                &share(shards.helper_input_share),
            ),
            metadata,
            public_share: shards.public_share,
        }
    }

    /// An extension of type `t`.
    pub(crate) fn extension(t: u16) -> Extension {
        Extension {
            extension_type: t,
            extension_data: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{NOW, PRECISION, extension, report, seal, task, time};
    use super::*;
    use crate::task::AggregatorRole;
    use cairn_dap_core::Label;
    use cairn_dap_messages::{Duration, HpkeConfigId, Interval, Role};

    #[test]
    fn reports_older_than_the_expiry_age_are_dropped() {
        let mut t = task(AggregatorRole::Leader, None);
        // No expiry age: any past time is fine.
        assert_eq!(check_expiry(&t, Time(0), NOW), Ok(()));
        t.report_expiry_age = Some(2 * PRECISION);
        let unit = NOW / PRECISION;
        // A report whose start is at most the age ago is kept; one second more is too old.
        let oldest_kept = (NOW - 2 * PRECISION).div_ceil(PRECISION);
        assert_eq!(t.expiry_cutoff(NOW), Some(oldest_kept));
        assert_eq!(check_expiry(&t, Time(oldest_kept), NOW), Ok(()));
        assert_eq!(
            check_expiry(&t, Time(oldest_kept - 1), NOW),
            Err(ReportError::ReportDropped)
        );
        assert_eq!(check_expiry(&t, Time(unit), NOW), Ok(()));
        // On a precision boundary, the unit that starts exactly `age` ago is kept.
        let boundary = unit * PRECISION;
        assert_eq!(
            check_expiry(&t, Time(unit - 2), boundary),
            Ok(()),
            "starts exactly two hours before now"
        );
        assert_eq!(
            check_expiry(&t, Time(unit - 2), boundary + 1),
            Err(ReportError::ReportDropped)
        );
        // An age longer than the epoch keeps everything.
        t.report_expiry_age = Some(NOW * 2);
        assert_eq!(check_expiry(&t, Time(0), NOW), Ok(()));
    }

    #[test]
    fn report_times_are_checked_against_now_and_the_task_interval() {
        let open = task(AggregatorRole::Leader, None).parameters;
        for at in [Checkpoint::Upload, Checkpoint::Aggregation] {
            assert_eq!(check_time(&open, time(NOW), NOW, 300, at), Ok(()));
            // Long past is fine without a task interval; skew is allowed up to the second.
            assert_eq!(check_time(&open, Time(0), NOW, 300, at), Ok(()));
            let unit = (NOW + 300) / PRECISION * PRECISION;
            assert_eq!(check_time(&open, time(unit), unit - 300, 300, at), Ok(()));
            assert_eq!(
                check_time(&open, time(unit), unit - 301, 300, at),
                Err(ReportError::ReportTooEarly)
            );
            assert_eq!(
                check_time(&open, Time(u64::MAX), NOW, 300, at),
                Err(ReportError::InvalidMessage),
                "a time that overflows in seconds"
            );
        }
        let interval = Interval::new(time(NOW), Duration(2)).unwrap();
        let bounded = task(AggregatorRole::Leader, Some(interval)).parameters;
        let before = Time(interval.start.0 - 1);
        let end = interval.end();
        let inside = Time(interval.start.0 + 1);
        let later = NOW + 10 * PRECISION;
        for at in [Checkpoint::Upload, Checkpoint::Aggregation] {
            assert_eq!(check_time(&bounded, interval.start, later, 0, at), Ok(()));
            assert_eq!(check_time(&bounded, inside, later, 0, at), Ok(()));
        }
        let cases = [
            (before, Checkpoint::Upload, ReportError::ReportDropped),
            (end, Checkpoint::Upload, ReportError::ReportDropped),
            (before, Checkpoint::Aggregation, ReportError::TaskNotStarted),
            (end, Checkpoint::Aggregation, ReportError::TaskExpired),
        ];
        for (t, at, expected) in cases {
            assert_eq!(
                check_time(&bounded, t, later, 0, at),
                Err(expected),
                "{t:?} {at:?}"
            );
        }
        // Too early wins over the interval.
        assert_eq!(
            check_time(&bounded, end, NOW, 0, Checkpoint::Aggregation),
            Err(ReportError::ReportTooEarly)
        );
    }

    #[test]
    fn any_held_key_decrypts_and_an_unknown_one_is_named_per_checkpoint() {
        let expired = HpkeKeypair::generate(HpkeConfigId(1));
        let active = HpkeKeypair::generate(HpkeConfigId(2));
        let keys = [
            (expired.clone(), HpkeKeyState::Expired),
            (active.clone(), HpkeKeyState::Active),
        ];
        let ct = |id| HpkeCiphertext {
            config_id: HpkeConfigId(id),
            enc: Vec::new(),
            payload: Vec::new(),
        };
        for at in [Checkpoint::Upload, Checkpoint::Aggregation] {
            assert_eq!(
                keypair_for(&keys, &ct(1), at).unwrap().config(),
                expired.config()
            );
            assert_eq!(
                keypair_for(&keys, &ct(2), at).unwrap().config(),
                active.config()
            );
        }
        assert_eq!(
            keypair_for(&keys, &ct(3), Checkpoint::Upload).unwrap_err(),
            ReportError::OutdatedConfig
        );
        assert_eq!(
            keypair_for(&keys, &ct(3), Checkpoint::Aggregation).unwrap_err(),
            ReportError::HpkeDecryptError
        );
        assert_eq!(
            keypair_for(&[], &ct(1), Checkpoint::Upload).unwrap_err(),
            ReportError::OutdatedConfig
        );
    }

    #[test]
    fn only_an_empty_taskbind_on_a_taskprov_task_is_recognized() {
        assert_eq!(check_extensions(&[], || false), Ok(()));
        // taskbind: only on a taskprov task, and only empty.
        assert_eq!(check_extensions(&[extension(0xff00)], || true), Ok(()));
        let mut full = extension(0xff00);
        full.extension_data = vec![1];
        assert_eq!(
            check_extensions(&[full], || true),
            Err(ReportError::InvalidMessage)
        );
        assert_eq!(
            check_extensions(&[extension(0xff00), extension(0xff01)], || true),
            Err(ReportError::InvalidMessage)
        );
        assert_eq!(
            check_extensions(&[extension(0xff00)], || false),
            Err(ReportError::InvalidMessage)
        );
    }

    #[test]
    fn input_shares_open_only_as_sealed_and_must_decode() {
        let params = task(AggregatorRole::Leader, None).parameters;
        let leader = HpkeKeypair::generate(HpkeConfigId(1));
        let helper = HpkeKeypair::generate(HpkeConfigId(2));
        let r = report(&params, &leader, &helper, time(NOW), Vec::new(), Vec::new());
        let to_leader = HpkeApplicationInfo::new(Label::InputShare, Role::Client, Role::Leader);
        let to_helper = HpkeApplicationInfo::new(Label::InputShare, Role::Client, Role::Helper);
        let opened = open_input_share(
            &params,
            &leader,
            &to_leader,
            &r.metadata,
            &r.public_share,
            &r.leader_encrypted_input_share,
        )
        .unwrap();
        assert!(opened.private_extensions.is_empty());
        assert!(!opened.payload.is_empty());
        // Another recipient's info, another report's metadata, another public share, another
        // key: none opens.
        let mut moved = r.metadata.clone();
        moved.time = Time(moved.time.0 + 1);
        let refusals = [
            (&leader, &to_helper, &r.metadata, &r.public_share[..]),
            (&leader, &to_leader, &moved, &r.public_share[..]),
            (&leader, &to_leader, &r.metadata, &[0xaa][..]),
            (&helper, &to_leader, &r.metadata, &r.public_share[..]),
        ];
        for (kp, info, metadata, public_share) in refusals {
            assert_eq!(
                open_input_share(
                    &params,
                    kp,
                    info,
                    metadata,
                    public_share,
                    &r.leader_encrypted_input_share
                )
                .err(),
                Some(ReportError::HpkeDecryptError)
            );
        }
        // A plaintext that is not a PlaintextInputShare.
        let aad = params
            .input_share_aad(&r.metadata, &r.public_share)
            .unwrap();
        let garbage =
            cairn_dap_core::hpke::seal(leader.config(), &to_leader, &[0xff; 3], &aad).unwrap();
        assert_eq!(
            open_input_share(
                &params,
                &leader,
                &to_leader,
                &r.metadata,
                &r.public_share,
                &garbage
            )
            .err(),
            Some(ReportError::InvalidMessage)
        );
        // A report whose AAD cannot be encoded (task_info longer than its length prefix).
        let mut unencodable = params.clone();
        unencodable.task_info = "x".repeat(300);
        assert_eq!(
            open_input_share(
                &unencodable,
                &leader,
                &to_leader,
                &r.metadata,
                &r.public_share,
                &r.leader_encrypted_input_share
            )
            .err(),
            Some(ReportError::InvalidMessage)
        );
        // The fixture's sealing matches what `open_input_share` expects.
        let resealed = seal(
            &params,
            &helper,
            Role::Helper,
            &r.metadata,
            &r.public_share,
            &opened,
        );
        assert!(
            open_input_share(
                &params,
                &helper,
                &to_helper,
                &r.metadata,
                &r.public_share,
                &resealed
            ) == Ok(opened)
        );
    }

    #[test]
    fn the_helpers_answer_is_read_per_report() {
        assert_eq!(
            helper_verdict(VerifyStepResult::Continue(vec![1, 2])),
            Ok(vec![1, 2])
        );
        assert_eq!(
            helper_verdict(VerifyStepResult::Reject(ReportError::ReportReplayed)),
            Err(ReportError::ReportReplayed)
        );
        assert_eq!(
            helper_verdict(VerifyStepResult::Finish),
            Err(ReportError::VdafVerifyError)
        );
    }
}
