//! Round trips for every message, plus truncated and garbage input.

use crate::*;
use std::fmt::Debug;

fn ct(id: u8) -> HpkeCiphertext {
    HpkeCiphertext {
        config_id: HpkeConfigId(id),
        enc: vec![id; 32],
        payload: vec![0xaa, 0xbb, id],
    }
}

fn metadata(n: u8) -> ReportMetadata {
    ReportMetadata {
        id: ReportId::from_bytes([n; 16]),
        time: Time(1_729_629 + u64::from(n)),
        public_extensions: vec![Extension {
            extension_type: 0x1234,
            extension_data: vec![n],
        }],
    }
}

fn task_configuration() -> TaskConfiguration {
    TaskConfiguration {
        task_info: b"cairn".to_vec(),
        leader_aggregator_endpoint: b"https://leader.example/dap/".to_vec(),
        helper_aggregator_endpoint: b"https://helper.example/".to_vec(),
        time_precision: TimePrecision(3600),
        min_batch_size: 100,
        batch_mode: BatchMode::TimeInterval,
        batch_config: vec![],
        vdaf_type: 2,
        vdaf_configuration: 255u64.to_be_bytes().to_vec(),
        extensions: vec![Extension {
            extension_type: Extension::TASK_INTERVAL,
            extension_data: Interval::new(Time(10), Duration(20))
                .unwrap()
                .get_encoded()
                .unwrap(),
        }],
    }
}

fn collection_job_req() -> CollectionJobReq {
    CollectionJobReq {
        query: Query::TimeInterval {
            batch_interval: Interval::new(Time(1000), Duration(24)).unwrap(),
        },
        agg_param: vec![],
        extensions: vec![],
    }
}

/// Encodes, decodes, compares; then every strict prefix must fail to decode or decode to
/// something else (messages that end with "the rest of the body" may stop at a boundary), and
/// decoding must never panic.
fn round_trip<T: Encode + Decode + PartialEq + Debug>(value: T) {
    let bytes = value.get_encoded().unwrap();
    assert_eq!(T::get_decoded(&bytes).unwrap(), value);
    for n in 0..bytes.len() {
        if let Ok(v) = T::get_decoded(&bytes[..n]) {
            assert_ne!(v, value, "prefix of {n} bytes decoded to the same value");
        }
    }
    let mut extra = bytes.clone();
    extra.push(0);
    assert!(T::get_decoded(&extra).is_err() || T::get_decoded(&extra).unwrap() != value);
}

#[test]
fn hpke_config_known_encoding() {
    let config = HpkeConfig {
        id: HpkeConfigId(194),
        kem_id: HpkeKemId::X25519_HKDF_SHA256,
        kdf_id: HpkeKdfId::HKDF_SHA256,
        aead_id: HpkeAeadId::AES_128_GCM,
        public_key: vec![1, 2, 3, 4],
    };
    assert_eq!(
        config.get_encoded().unwrap(),
        [194, 0, 0x20, 0, 1, 0, 1, 0, 4, 1, 2, 3, 4]
    );
    round_trip(config.clone());
    round_trip(HpkeConfigList(vec![config.clone(), config]));
    assert!(HpkeConfigList::get_decoded(&[0, 0]).is_err(), "empty list");
    assert!(HpkeConfigList(vec![]).get_encoded().is_err());
}

#[test]
fn ciphertext_and_roles() {
    round_trip(ct(7));
    assert!(
        HpkeCiphertext::get_decoded(&[1, 0, 0, 0, 0, 0, 1, 9]).is_err(),
        "empty enc"
    );
    for role in [Role::Collector, Role::Client, Role::Leader, Role::Helper] {
        round_trip(role);
    }
    assert!(Role::get_decoded(&[4]).is_err());
}

#[test]
fn upload_messages() {
    let report = Report {
        metadata: metadata(1),
        public_share: vec![5; 40],
        leader_encrypted_input_share: ct(1),
        helper_encrypted_input_share: ct(2),
    };
    round_trip(metadata(3));
    round_trip(report.clone());
    round_trip(UploadRequest {
        reports: vec![report.clone(), report],
    });
    round_trip(UploadErrors {
        status: ReportError::ALL
            .iter()
            .enumerate()
            .map(|(i, e)| ReportUploadStatus {
                id: ReportId::from_bytes([u8::try_from(i).unwrap(); 16]),
                error: *e,
            })
            .collect(),
    });
    assert!(ReportError::get_decoded(&[12]).is_err());
    round_trip(PlaintextInputShare {
        private_extensions: vec![],
        payload: vec![1, 2, 3],
    });
    round_trip(InputShareAad {
        task_id: TaskId::from_bytes([9; 32]),
        task_configuration: task_configuration(),
        metadata: metadata(4),
        public_share: vec![],
    });
}

#[test]
fn task_configuration_round_trip_and_interval() {
    let tc = task_configuration();
    assert_eq!(
        tc.task_interval(),
        Some(Interval::new(Time(10), Duration(20)).unwrap())
    );
    round_trip(tc);
    round_trip(BatchMode::LeaderSelected);
    assert!(BatchMode::get_decoded(&[0]).is_err());
    assert!(BatchMode::get_decoded(&[3]).is_err());
}

#[test]
fn extension_order() {
    let e = |t| Extension {
        extension_type: t,
        extension_data: vec![],
    };
    assert!(extensions_strictly_increasing(&[e(1), e(2), e(9)]));
    assert!(!extensions_strictly_increasing(&[e(1), e(1)]));
    assert!(!extensions_strictly_increasing(&[e(2), e(1)]));
}

#[test]
fn aggregation_messages() {
    let init = AggregationJobInitReq {
        verification_key_id: 0,
        agg_param: vec![],
        extensions: vec![Extension {
            extension_type: Extension::LEADER_SELECTED_BATCH_ID,
            extension_data: vec![3; 32],
        }],
        verify_inits: (0..3)
            .map(|n| VerifyInit {
                report_share: ReportShare {
                    metadata: metadata(n),
                    public_share: vec![n; 3],
                    encrypted_input_share: ct(n),
                },
                payload: vec![0, 0, 0, 0, 1, n],
            })
            .collect(),
    };
    round_trip(init);
    round_trip(AggregationJobResp {
        verify_resps: vec![
            VerifyResp {
                report_id: ReportId::from_bytes([1; 16]),
                result: VerifyStepResult::Continue(vec![2, 0, 0, 0, 0]),
            },
            VerifyResp {
                report_id: ReportId::from_bytes([2; 16]),
                result: VerifyStepResult::Finish,
            },
            VerifyResp {
                report_id: ReportId::from_bytes([3; 16]),
                result: VerifyStepResult::Reject(ReportError::VdafVerifyError),
            },
        ],
    });
    let mut bad = ReportId::from_bytes([1; 16]).get_encoded().unwrap();
    bad.push(3);
    assert!(VerifyResp::get_decoded(&bad).is_err());
    round_trip(AggregationJobContinueReq {
        step: 1,
        verify_continues: vec![VerifyContinue {
            report_id: ReportId::from_bytes([8; 16]),
            payload: vec![1, 2],
        }],
    });
}

#[test]
fn collection_messages() {
    round_trip(collection_job_req());
    round_trip(CollectionJobReq {
        query: Query::LeaderSelected,
        agg_param: vec![1, 2],
        extensions: vec![],
    });
    round_trip(CollectionJobResp {
        report_count: 12,
        interval: Interval::new(Time(1), Duration(2)).unwrap(),
        leader_encrypted_agg_share: ct(3),
        helper_encrypted_agg_share: ct(4),
    });
    for selector in [
        BatchSelector::TimeInterval {
            batch_interval: Interval::new(Time(5), Duration(6)).unwrap(),
        },
        BatchSelector::LeaderSelected {
            batch_id: BatchId::from_bytes([4; 32]),
        },
    ] {
        round_trip(selector.clone());
        round_trip(AggregateShareReq {
            collection_job_req: collection_job_req(),
            batch_selector: selector,
            report_count: 100,
            checksum: BatchChecksum::from_bytes([0x5a; 32]),
        });
    }
    round_trip(AggregateShare {
        encrypted_aggregate_share: ct(9),
    });
    round_trip(AggregateShareAad {
        task_id: TaskId::from_bytes([1; 32]),
        task_configuration: task_configuration(),
        collection_job_req: collection_job_req(),
    });
    // A leader-selected query with a non-empty config is malformed.
    assert!(Query::get_decoded(&[2, 0, 1, 0]).is_err());
    // A time-interval query whose config is not exactly one interval is malformed.
    assert!(Query::get_decoded(&[1, 0, 3, 0, 0, 0]).is_err());
}

#[test]
fn problem_types_round_trip() {
    for t in DapProblemType::ALL {
        assert_eq!(DapProblemType::from_urn(&t.urn()), Some(t));
    }
    assert_eq!(
        DapProblemType::InvalidMessage.urn(),
        "urn:ietf:params:ppm:dap:error:invalidMessage"
    );
    assert_eq!(DapProblemType::from_urn("about:blank"), None);
}

/// A small deterministic generator, so the garbage test needs no dependency.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn garbage_never_panics() {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..2000 {
        let len = usize::try_from(xorshift(&mut s) % 200).unwrap();
        let bytes: Vec<u8> = (0..len)
            .map(|_| xorshift(&mut s).to_le_bytes()[0])
            .collect();
        let _ = UploadRequest::get_decoded(&bytes);
        let _ = UploadErrors::get_decoded(&bytes);
        let _ = HpkeConfigList::get_decoded(&bytes);
        let _ = AggregationJobInitReq::get_decoded(&bytes);
        let _ = AggregationJobResp::get_decoded(&bytes);
        let _ = AggregationJobContinueReq::get_decoded(&bytes);
        let _ = CollectionJobReq::get_decoded(&bytes);
        let _ = CollectionJobResp::get_decoded(&bytes);
        let _ = AggregateShareReq::get_decoded(&bytes);
        let _ = AggregateShare::get_decoded(&bytes);
        let _ = TaskConfiguration::get_decoded(&bytes);
        let _ = PlaintextInputShare::get_decoded(&bytes);
    }
    // A length prefix claiming 4 GiB must not allocate or panic.
    assert!(Report::get_decoded(&[0xff; 64]).is_err());
}
