//! DAP-18 client: shards a measurement with the task's VDAF, seals each input share to its
//! aggregator (binding the task configuration into the AAD) and uploads reports in bulk.

use aws_lc_rs::rand::SecureRandom;
use cairn_dap_core::hpke::{self, Label};
use cairn_dap_core::{Measurement, Protocol, TaskParameters};
use cairn_dap_messages::{
    DapProblemType, Decode, Encode, Extension, HpkeConfig, HpkeConfigList, PlaintextInputShare,
    Report, ReportId, ReportMetadata, Role, Time, UploadErrors, UploadRequest, dap09, media_type,
};
use thiserror::Error;

/// Why a client operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The HTTP exchange failed.
    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),
    /// The server answered with an error status (and a DAP problem type, if it sent one).
    #[error("server answered {status}{}", problem.map(|p| format!(" ({})", p.urn())).unwrap_or_default())]
    Status {
        /// The HTTP status.
        status: u16,
        /// The DAP problem type.
        problem: Option<DapProblemType>,
    },
    /// A message could not be encoded or decoded.
    #[error("codec: {0}")]
    Codec(#[from] cairn_dap_messages::CodecError),
    /// No HPKE configuration of an aggregator uses the mandatory suite.
    #[error("no supported HPKE configuration")]
    NoSupportedHpkeConfig,
    /// Sharding failed (for instance, the measurement is out of range).
    #[error(transparent)]
    Vdaf(#[from] cairn_dap_core::VdafError),
    /// Encryption failed.
    #[error(transparent)]
    Hpke(#[from] cairn_dap_core::HpkeError),
    /// The task parameters are unusable.
    #[error(transparent)]
    Task(#[from] cairn_dap_core::TaskError),
}

/// Reads an error response into [`ClientError::Status`].
pub async fn status_error(resp: reqwest::Response) -> ClientError {
    let status = resp.status().as_u16();
    let problem = resp
        .bytes()
        .await
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| {
            v.get("type")
                .and_then(|t| t.as_str())
                .and_then(DapProblemType::from_urn)
        });
    ClientError::Status { status, problem }
}

/// A client for one task.
#[derive(Debug, Clone)]
pub struct Client {
    parameters: TaskParameters,
    leader_config: HpkeConfig,
    helper_config: HpkeConfig,
    http: reqwest::Client,
    /// Taskprov (the task ID is derived from the task's configuration): the `dap-taskprov`
    /// header every upload carries, so the leader can provision the task in band.
    taskprov_header: Option<String>,
}

/// The `dap-taskprov` header of a taskprov task.
fn taskprov_header(parameters: &TaskParameters) -> Option<String> {
    if !cairn_dap_core::taskprov::is_taskprov_task(parameters) {
        return None;
    }
    cairn_dap_core::taskprov::header_value(parameters).ok()
}

async fn fetch_config(http: &reqwest::Client, base: &str) -> Result<HpkeConfig, ClientError> {
    let resp = http
        .get(TaskParameters::url(base, "hpke_config"))
        .send()
        .await?;
    if !resp.status().is_success() {
        return Err(status_error(resp).await);
    }
    let list = HpkeConfigList::get_decoded(&resp.bytes().await?)?;
    list.0
        .into_iter()
        .find(hpke::is_supported)
        .ok_or(ClientError::NoSupportedHpkeConfig)
}

impl Client {
    /// A client that fetches both aggregators' HPKE configurations.
    pub async fn new(
        parameters: TaskParameters,
        http: reqwest::Client,
    ) -> Result<Client, ClientError> {
        parameters.validate()?;
        let leader_config = fetch_config(&http, &parameters.leader_endpoint).await?;
        let helper_config = fetch_config(&http, &parameters.helper_endpoint).await?;
        Ok(Client {
            taskprov_header: taskprov_header(&parameters),
            parameters,
            leader_config,
            helper_config,
            http,
        })
    }

    /// A client with known HPKE configurations.
    pub fn with_hpke_configs(
        parameters: TaskParameters,
        leader_config: HpkeConfig,
        helper_config: HpkeConfig,
        http: reqwest::Client,
    ) -> Client {
        Client {
            taskprov_header: taskprov_header(&parameters),
            parameters,
            leader_config,
            helper_config,
            http,
        }
    }

    /// A report of `measurement` taken at POSIX second `now`, with a fresh random report ID.
    pub fn prepare_report(
        &self,
        measurement: &Measurement,
        now: u64,
    ) -> Result<Report, ClientError> {
        let mut id = [0u8; 16];
        aws_lc_rs::rand::SystemRandom::new()
            .fill(&mut id)
            .map_err(|_| ClientError::Hpke(cairn_dap_core::HpkeError::Seal))?;
        let p = &self.parameters;
        let time = Time::from_seconds(now, p.precision())
            .ok_or(cairn_dap_core::TaskError::TimePrecision)?;
        let metadata = ReportMetadata {
            id: ReportId::from_bytes(id),
            time,
            public_extensions: Vec::new(),
        };
        let shards = p.engine().shard(measurement, &id)?;
        let aad = p.input_share_aad(&metadata, &shards.public_share)?;
        let seal = |config: &HpkeConfig, role: Role, payload: Vec<u8>| -> Result<_, ClientError> {
            // A taskprov task's reports carry the (empty) taskbind extension for both
            // aggregators.
            let private_extensions = match self.taskprov_header {
                Some(_) => vec![Extension {
                    extension_type: cairn_dap_core::taskprov::TASKBIND_EXTENSION,
                    extension_data: Vec::new(),
                }],
                None => Vec::new(),
            };
            let plaintext = PlaintextInputShare {
                private_extensions,
                payload,
            }
            .get_encoded()?;
            let info = p.hpke_info(Label::InputShare, Role::Client, role);
            Ok(hpke::seal(config, &info, &plaintext, &aad)?)
        };
        Ok(Report {
            leader_encrypted_input_share: seal(
                &self.leader_config,
                Role::Leader,
                shards.leader_input_share,
            )?,
            helper_encrypted_input_share: seal(
                &self.helper_config,
                Role::Helper,
                shards.helper_input_share,
            )?,
            metadata,
            public_share: shards.public_share,
        })
    }

    /// Uploads `reports` in one request. Returns the reports the leader refused (empty when
    /// all were accepted).
    pub async fn upload(&self, reports: Vec<Report>) -> Result<UploadErrors, ClientError> {
        if self.parameters.protocol == Protocol::Dap09 {
            for report in reports {
                self.upload_dap09(report).await?;
            }
            return Ok(UploadErrors::default());
        }
        let body = UploadRequest { reports }.get_encoded()?;
        let url = TaskParameters::url(
            &self.parameters.leader_endpoint,
            &format!("tasks/{}/reports", self.parameters.task_id),
        );
        let mut req = self
            .http
            .post(url)
            .header("content-type", media_type::UPLOAD_REQ);
        if let Some(advert) = &self.taskprov_header {
            req = req.header(cairn_dap_core::taskprov::HEADER, advert);
        }
        let resp = req.body(body).send().await?;
        if !resp.status().is_success() {
            return Err(status_error(resp).await);
        }
        let bytes = resp.bytes().await?;
        Ok(UploadErrors::get_decoded(&bytes)?)
    }

    /// DAP-09's upload: one report per request, `PUT` as `application/dap-report`, its time in
    /// seconds. A refused report is an error (a problem document).
    async fn upload_dap09(&self, report: Report) -> Result<(), ClientError> {
        let p = &self.parameters;
        let body = dap09::Report {
            metadata: dap09::ReportMetadata {
                id: report.metadata.id,
                time_seconds: p.seconds(report.metadata.time),
            },
            public_share: report.public_share,
            leader_encrypted_input_share: report.leader_encrypted_input_share,
            helper_encrypted_input_share: report.helper_encrypted_input_share,
        }
        .get_encoded()?;
        let url = TaskParameters::url(&p.leader_endpoint, &format!("tasks/{}/reports", p.task_id));
        let resp = self
            .http
            .put(url)
            .header("content-type", dap09::media_type::REPORT)
            .body(body)
            .send()
            .await?;
        if !resp.status().is_success() {
            return Err(status_error(resp).await);
        }
        Ok(())
    }

    /// Prepares and uploads `measurements`, all stamped with POSIX second `now`.
    pub async fn upload_measurements(
        &self,
        measurements: &[Measurement],
        now: u64,
    ) -> Result<UploadErrors, ClientError> {
        let reports = measurements
            .iter()
            .map(|m| self.prepare_report(m, now))
            .collect::<Result<Vec<_>, _>>()?;
        self.upload(reports).await
    }
}
