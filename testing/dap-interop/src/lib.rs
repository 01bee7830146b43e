//! Interop tests only (see `tests/`): Cairn's DAP-09 edge against `janus_client` and
//! `janus_collector` from crates.io, unmodified. This library is empty.
