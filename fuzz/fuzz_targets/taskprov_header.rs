//! Fuzzes the `dap-taskprov` header an upload or aggregation-job request may carry: base64url,
//! then a DAP-18 `TaskConfiguration`, then the task parameters it maps to. The input is read
//! both as the header itself and as the configuration bytes inside a well-formed header (so the
//! mapping is reached). Reading never panics; a task that is taken re-advertises exactly the
//! bytes it came from, and its ID is derived from them.
#![no_main]

use cairn_dap_core::taskprov;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = taskprov::decode_header(data);
    let header = taskprov::encode_header(data);
    let id = taskprov::task_id(data);
    if let Ok(task) = taskprov::read_header(header.as_bytes(), &id) {
        assert_eq!(task.task_id, id);
        assert_eq!(task.encoded, data);
        assert!(taskprov::is_taskprov_task(&task.parameters));
        let again = taskprov::header_value(&task.parameters).expect("a taken task encodes");
        assert_eq!(again, header);
    }
});
