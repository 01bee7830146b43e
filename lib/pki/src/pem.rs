//! PEM (RFC 7468) encoding and decoding of DER blocks: certificate chains, private keys.

/// Why a text is not valid PEM.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PemError {
    /// A `-----BEGIN ` line has no closing `-----`.
    #[error("malformed PEM: unterminated BEGIN line")]
    UnterminatedBegin,
    /// A block has no matching END line.
    #[error("malformed PEM: no END line for {0:?}")]
    NoEnd(String),
    /// A block's armor or base64 is invalid.
    #[error("malformed PEM: {0}")]
    Block(String),
}

/// PEM-encodes `der` under `label` (e.g. `CERTIFICATE`), LF line endings, 64-column base64.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    // Encoding only fails for labels with invalid characters, which no caller passes; fall back
    // to an empty string rather than panicking.
    der::pem::encode_string(label, der::pem::LineEnding::LF, der).unwrap_or_default()
}

/// Decodes every PEM block in `pem`, in order, as `(label, der)`. Text between blocks is ignored;
/// a block with bad armor or base64 is an error.
pub fn pem_decode_all(pem: &str) -> Result<Vec<(String, Vec<u8>)>, PemError> {
    const BEGIN: &str = "-----BEGIN ";
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(start) = rest.find(BEGIN) {
        let block = &rest[start..];
        let label_end = block[BEGIN.len()..]
            .find("-----")
            .ok_or(PemError::UnterminatedBegin)?;
        let label = &block[BEGIN.len()..BEGIN.len() + label_end];
        let end_marker = format!("-----END {label}-----");
        let end = block
            .find(&end_marker)
            .ok_or_else(|| PemError::NoEnd(label.to_string()))?
            + end_marker.len();
        let (found_label, der) = der::pem::decode_vec(&block.as_bytes()[..end])
            .map_err(|e| PemError::Block(e.to_string()))?;
        out.push((found_label.to_string(), der));
        rest = &block[end..];
    }
    Ok(out)
}

/// Decodes the certificates of a PEM chain (other block types are skipped).
pub fn pem_certificates(pem: &str) -> Result<Vec<Vec<u8>>, PemError> {
    Ok(pem_decode_all(pem)?
        .into_iter()
        .filter(|(label, _)| label == "CERTIFICATE")
        .map(|(_, der)| der)
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trips_multiple_blocks() {
        let a = pem_encode("CERTIFICATE", &[1, 2, 3]);
        let b = pem_encode("PRIVATE KEY", &[4u8; 100]);
        let joined = format!("junk before\n{a}\nbetween\r\n{b}trailer");
        let blocks = pem_decode_all(&joined).unwrap();
        assert_eq!(
            blocks,
            vec![
                ("CERTIFICATE".to_string(), vec![1, 2, 3]),
                ("PRIVATE KEY".to_string(), vec![4u8; 100])
            ]
        );
        assert_eq!(pem_certificates(&joined).unwrap(), vec![vec![1, 2, 3]]);
        assert!(pem_decode_all("").unwrap().is_empty());
        assert!(matches!(
            pem_decode_all("-----BEGIN X-----\n!!!\n-----END X-----\n"),
            Err(PemError::Block(_))
        ));
        assert_eq!(
            pem_decode_all("-----BEGIN X-----\nAAAA\n"),
            Err(PemError::NoEnd("X".into()))
        );
        assert_eq!(
            pem_decode_all("-----BEGIN X\nAAAA\n"),
            Err(PemError::UnterminatedBegin)
        );
    }
}
