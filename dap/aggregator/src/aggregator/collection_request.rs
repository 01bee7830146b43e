//! The checks on a collector's `CollectionJobReq` that the leader makes when the job is
//! created (DAP-18 §4.6.1) and the helper makes again on the copy inside an aggregate-share
//! request (§4.6.4): the aggregation parameter (§4.3), the batch interval and the collection
//! job extensions (§4.6.2). Pure.

use crate::error::Error;
use cairn_dap_core::VdafInstance;
use cairn_dap_messages::{
    DapProblemType, Extension, Interval, TaskId, extensions_strictly_increasing,
};

/// An aggregation parameter the VDAF accepts and, for a time-interval query, a non-empty batch
/// interval that does not overflow.
pub(super) fn check_collection_query(
    task_id: &TaskId,
    vdaf: &VdafInstance,
    agg_param: &[u8],
    interval: Option<&Interval>,
) -> Result<(), Error> {
    if !vdaf.is_agg_param_valid(agg_param) {
        return Err(Error::dap(
            DapProblemType::InvalidAggregationParameter,
            Some(*task_id),
            "invalid aggregation parameter",
        ));
    }
    let Some(interval) = interval else {
        return Ok(());
    };
    if interval.duration.0 == 0 || Interval::new(interval.start, interval.duration).is_none() {
        return Err(Error::dap(
            DapProblemType::BatchInvalid,
            Some(*task_id),
            "empty or overflowing batch interval",
        ));
    }
    Ok(())
}

/// Collection job extensions: strictly increasing by type (`invalidExtension`), and — none
/// being supported — absent (`unsupportedExtension`).
pub(super) fn check_collection_extensions(
    task_id: &TaskId,
    extensions: &[Extension],
) -> Result<(), Error> {
    if !extensions_strictly_increasing(extensions) {
        return Err(Error::dap(
            DapProblemType::InvalidExtension,
            Some(*task_id),
            "extensions out of order",
        ));
    }
    if !extensions.is_empty() {
        return Err(Error::dap(
            DapProblemType::UnsupportedExtension,
            Some(*task_id),
            "no collection job extension is supported",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_dap_messages::{Duration, Time};

    fn problem(r: Result<(), Error>) -> Option<DapProblemType> {
        match r {
            Ok(()) => None,
            Err(Error::Dap { problem, .. }) => Some(problem),
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn queries_need_a_valid_parameter_and_a_real_interval() {
        let t = TaskId::from_bytes([1; 32]);
        let vdaf = VdafInstance::Prio3Count;
        let interval = |start, duration| Interval {
            start: Time(start),
            duration: Duration(duration),
        };
        assert_eq!(problem(check_collection_query(&t, &vdaf, &[], None)), None);
        assert_eq!(
            problem(check_collection_query(
                &t,
                &vdaf,
                &[],
                Some(&interval(10, 2))
            )),
            None
        );
        assert_eq!(
            problem(check_collection_query(&t, &vdaf, &[1], None)),
            Some(DapProblemType::InvalidAggregationParameter)
        );
        assert_eq!(
            problem(check_collection_query(
                &t,
                &vdaf,
                &[],
                Some(&interval(10, 0))
            )),
            Some(DapProblemType::BatchInvalid)
        );
        assert_eq!(
            problem(check_collection_query(
                &t,
                &vdaf,
                &[],
                Some(&interval(u64::MAX, 1))
            )),
            Some(DapProblemType::BatchInvalid)
        );
        // The parameter is checked first.
        assert_eq!(
            problem(check_collection_query(
                &t,
                &vdaf,
                &[1],
                Some(&interval(10, 0))
            )),
            Some(DapProblemType::InvalidAggregationParameter)
        );
    }

    #[test]
    fn no_collection_extension_is_supported() {
        let t = TaskId::from_bytes([1; 32]);
        let ext = |extension_type| Extension {
            extension_type,
            extension_data: Vec::new(),
        };
        assert_eq!(problem(check_collection_extensions(&t, &[])), None);
        assert_eq!(
            problem(check_collection_extensions(&t, &[ext(1), ext(2)])),
            Some(DapProblemType::UnsupportedExtension)
        );
        assert_eq!(
            problem(check_collection_extensions(&t, &[ext(2), ext(1)])),
            Some(DapProblemType::InvalidExtension)
        );
    }
}
