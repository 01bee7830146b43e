//! Uploading reports (DAP-18 §4.4.2.2, leader): every report of an `UploadRequest` is checked
//! ([`check_upload`], pure) and the accepted ones are durably stored — replays and reports of
//! collected batches refused by the datastore — before the client hears 2xx. Refused reports
//! are listed in request order and counted per reason.

use super::Aggregator;
use super::report_checks::{
    Checkpoint, check_expiry, check_extensions, check_time, keypair_for, open_input_share,
};
use crate::datastore::{HpkeKeyState, StoredReport, UploadOutcome};
use crate::error::Error;
use crate::task::{AggregatorRole, AggregatorTask};
use cairn_dap_core::HpkeKeypair;
use cairn_dap_core::hpke::Label;
use cairn_dap_messages::codec::{LengthPrefix, put_items};
use cairn_dap_messages::{
    DapProblemType, Decode, Encode, Report, ReportError, ReportUploadStatus, Role, TaskId,
    UploadErrors, UploadRequest,
};
use std::collections::BTreeMap;

/// The leader's checks of one uploaded report, in order: a key it holds, the report's time,
/// its public extensions, its input share (decrypted and decoded), its private extensions.
/// Accepted, the report as the leader stores it.
fn check_upload(
    task: &AggregatorTask,
    keys: &[(HpkeKeypair, HpkeKeyState)],
    report: &Report,
    now: u64,
    skew: u64,
) -> Result<StoredReport, ReportError> {
    let kp = keypair_for(
        keys,
        &report.leader_encrypted_input_share,
        Checkpoint::Upload,
    )?;
    check_time(
        &task.parameters,
        report.metadata.time,
        now,
        skew,
        Checkpoint::Upload,
    )?;
    check_expiry(task, report.metadata.time, now)?;
    check_extensions(&report.metadata.public_extensions, || task.taskbound())?;
    let info = task
        .parameters
        .hpke_info(Label::InputShare, Role::Client, Role::Leader);
    let share = open_input_share(
        &task.parameters,
        kp,
        &info,
        &report.metadata,
        &report.public_share,
        &report.leader_encrypted_input_share,
    )?;
    check_extensions(&share.private_extensions, || task.taskbound())?;
    let mut public_extensions = Vec::new();
    put_items(
        &mut public_extensions,
        LengthPrefix::U16,
        &report.metadata.public_extensions,
        "public_extensions",
    )
    .map_err(|_| ReportError::InvalidMessage)?;
    Ok(StoredReport {
        report_id: report.metadata.id,
        time: report.metadata.time.0,
        public_extensions,
        public_share: report.public_share.clone(),
        leader_input_share: share.payload,
        helper_encrypted_input_share: report
            .helper_encrypted_input_share
            .get_encoded()
            .map_err(|_| ReportError::InvalidMessage)?,
    })
}

impl Aggregator {
    /// Handles an `UploadRequest` from an unknown source: see
    /// [`Aggregator::handle_upload_from`].
    pub async fn handle_upload(
        &self,
        task_id: &TaskId,
        body: &[u8],
    ) -> Result<UploadErrors, Error> {
        self.handle_upload_from(task_id, body, None).await
    }

    /// Handles an `UploadRequest` from `source` (when known): every accepted report is
    /// durably stored before this returns; refused ones are listed (in request order) and
    /// counted per reason. Past the task's or the source's upload limit the whole request is
    /// refused (`TooManyRequests`) before any report is looked at.
    pub async fn handle_upload_from(
        &self,
        task_id: &TaskId,
        body: &[u8],
        source: Option<std::net::IpAddr>,
    ) -> Result<UploadErrors, Error> {
        let task = self.task_in_role(task_id).await?;
        if task.role != AggregatorRole::Leader {
            return Err(Error::dap(
                DapProblemType::UnrecognizedTask,
                Some(*task_id),
                "not a leader task",
            ));
        }
        super::dap09::require_dap18(&task)?;
        let req = UploadRequest::get_decoded(body).map_err(|e| {
            Error::invalid_message(task_id, format!("malformed upload request: {e}"))
        })?;
        self.upload_reports(&task, &req.reports, source).await
    }

    /// Checks and stores `reports` of the leader task `task` (decoded from either protocol's
    /// upload): every accepted report is durably stored before this returns; refused ones are
    /// listed (in order) and counted per reason. Past the task's or the source's upload limit
    /// the whole request is refused (`TooManyRequests`) before any report is looked at.
    pub(super) async fn upload_reports(
        &self,
        task: &AggregatorTask,
        reports: &[Report],
        source: Option<std::net::IpAddr>,
    ) -> Result<UploadErrors, Error> {
        let task_id = &task.parameters.task_id;
        let n = u64::try_from(reports.len()).unwrap_or(u64::MAX);
        if let Err(wait) = self
            .inner
            .upload_limiter
            .admit(
                &self.inner.params.upload_limits,
                task_id,
                source,
                n,
                time::OffsetDateTime::now_utc(),
            )
            .await
        {
            metrics::counter!("cairn_dap_uploads_total", "outcome" => "rate_limited").increment(n);
            return Err(Error::TooManyRequests(wait));
        }
        let now = self.inner.clock.now();
        let skew = self.inner.params.tolerable_clock_skew_secs;
        let keys = self.current_keys().await?;
        let mut verdicts: Vec<Result<usize, ReportError>> = Vec::with_capacity(reports.len());
        let mut to_store = Vec::new();
        for report in reports {
            verdicts.push(check_upload(task, &keys, report, now, skew).map(|stored| {
                to_store.push(stored);
                to_store.len() - 1
            }));
        }
        // Reports refused before storage, per reason: counted in the storing transaction.
        let mut refused: BTreeMap<&'static str, u64> = BTreeMap::new();
        for e in verdicts.iter().filter_map(|v| v.as_ref().err()) {
            *refused.entry(e.name()).or_default() += 1;
        }
        let refused: Vec<(&'static str, u64)> = refused.into_iter().collect();
        let stored = self
            .inner
            .datastore
            .put_client_reports(task_id, &to_store, &refused)
            .await?;
        let mut errors = UploadErrors::default();
        let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
        for (report, verdict) in reports.iter().zip(verdicts) {
            let outcome = match verdict {
                Ok(i) => stored
                    .get(i)
                    .copied()
                    .unwrap_or(UploadOutcome::Refused(ReportError::ReportDropped)),
                Err(e) => UploadOutcome::Refused(e),
            };
            match outcome {
                UploadOutcome::Stored => *counts.entry("accepted").or_default() += 1,
                UploadOutcome::Refused(e) => {
                    *counts.entry(e.name()).or_default() += 1;
                    errors.status.push(ReportUploadStatus {
                        id: report.metadata.id,
                        error: e,
                    });
                }
            }
        }
        for (reason, n) in counts {
            metrics::counter!("cairn_dap_uploads_total", "outcome" => reason).increment(n);
        }
        Ok(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::super::report_checks::fixtures::{NOW, extension, report, task, time};
    use super::*;
    use cairn_dap_messages::{Duration, HpkeConfigId, Interval, Time};

    #[test]
    fn uploads_are_checked_in_order_and_stored_decrypted() {
        let t = task(AggregatorRole::Leader, None);
        let leader = HpkeKeypair::generate(HpkeConfigId(1));
        let helper = HpkeKeypair::generate(HpkeConfigId(2));
        let keys = [(leader.clone(), HpkeKeyState::Active)];
        let ok = report(&t.parameters, &leader, &helper, time(NOW), vec![], vec![]);
        let stored = check_upload(&t, &keys, &ok, NOW, 300).unwrap();
        assert_eq!(stored.report_id, ok.metadata.id);
        assert_eq!(stored.time, ok.metadata.time.0);
        assert_eq!(
            stored.public_extensions,
            [0, 0],
            "an empty u16-prefixed list"
        );
        assert_eq!(
            stored.helper_encrypted_input_share,
            ok.helper_encrypted_input_share.get_encoded().unwrap()
        );
        assert!(!stored.leader_input_share.is_empty());

        let early = report(
            &t.parameters,
            &leader,
            &helper,
            time(NOW + 7200),
            vec![],
            vec![],
        );
        let public = report(
            &t.parameters,
            &leader,
            &helper,
            time(NOW),
            vec![extension(9)],
            vec![],
        );
        let private = report(
            &t.parameters,
            &leader,
            &helper,
            time(NOW),
            vec![],
            vec![extension(9)],
        );
        // Sealed to the helper's key only: the leader does not know the config.
        let unknown = report(&t.parameters, &helper, &helper, time(NOW), vec![], vec![]);
        let mut tampered = ok.clone();
        tampered.public_share.push(0);
        let cases = [
            (&early, ReportError::ReportTooEarly),
            (&public, ReportError::InvalidMessage),
            (&private, ReportError::InvalidMessage),
            (&unknown, ReportError::OutdatedConfig),
            (&tampered, ReportError::HpkeDecryptError),
        ];
        for (r, expected) in cases {
            assert_eq!(check_upload(&t, &keys, r, NOW, 300).err(), Some(expected));
        }
        // An unknown key is reported before the time, the time before the extensions.
        let mut unknown_and_early = early.clone();
        unknown_and_early.leader_encrypted_input_share.config_id = HpkeConfigId(7);
        assert_eq!(
            check_upload(&t, &keys, &unknown_and_early, NOW, 300).err(),
            Some(ReportError::OutdatedConfig)
        );
        let mut early_with_extension = early;
        early_with_extension.metadata.public_extensions = vec![extension(9)];
        assert_eq!(
            check_upload(&t, &keys, &early_with_extension, NOW, 300).err(),
            Some(ReportError::ReportTooEarly)
        );
    }

    #[test]
    fn reports_outside_the_task_interval_are_dropped_at_upload() {
        let interval = Interval::new(time(NOW), Duration(1)).unwrap();
        let t = task(AggregatorRole::Leader, Some(interval));
        let leader = HpkeKeypair::generate(HpkeConfigId(1));
        let keys = [(leader.clone(), HpkeKeyState::Expired)];
        let before = report(
            &t.parameters,
            &leader,
            &leader,
            Time(interval.start.0 - 1),
            vec![],
            vec![],
        );
        assert_eq!(
            check_upload(&t, &keys, &before, NOW, 300).err(),
            Some(ReportError::ReportDropped)
        );
        let inside = report(
            &t.parameters,
            &leader,
            &leader,
            interval.start,
            vec![],
            vec![],
        );
        assert!(
            check_upload(&t, &keys, &inside, NOW, 300).is_ok(),
            "expired keys still decrypt"
        );
    }
}
