//! Challenge test server: DNS, HTTP-01 and TLS-ALPN-01 responders with a pebble-challtestsrv compatible management API.
