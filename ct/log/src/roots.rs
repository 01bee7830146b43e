//! The accepted roots, read once at start: the roots of a CCADB "All Certificate Records" CSV
//! the operator downloaded (optional), every `CERTIFICATE` in the `*.pem` and `*.crt` files of
//! the log's roots folder (extra roots), Google's Merge Delay Monitor Root (unless turned off),
//! and every root the log accepted before. That last set is kept in `accepted-roots.pem` in
//! the data folder, so a root never leaves the log because a newer CSV or folder lacks it:
//! removing one is an operator's edit of that file.

use cairn_tlog::chain::Roots;
use std::path::Path;

/// Errors loading the root set.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RootsError {
    /// The folder or a file could not be read.
    #[error("reading roots: {0}")]
    Io(#[from] std::io::Error),
    /// A file is not PEM certificates.
    #[error("root file {0} is not PEM certificates")]
    BadPem(String),
    /// A certificate does not parse.
    #[error("root certificate in {0} does not parse")]
    BadCertificate(String),
    /// The CCADB CSV is not a CSV file with the expected columns.
    #[error("CCADB CSV: {0}")]
    BadCsv(String),
}

/// Google's Merge Delay Monitor Root (SHA-256 86D8219C…A34134), which Chrome's CT policy
/// asks every log to accept so that Google can measure its merge delay.
pub const MERGE_DELAY_MONITOR_ROOT_PEM: &str = include_str!("mmd_monitor_root.pem");

/// The file in the data folder holding every root the log has accepted.
pub const ACCEPTED_ROOTS_FILE: &str = "accepted-roots.pem";

/// Where a log's roots come from.
#[derive(Debug, Clone, Default)]
pub struct RootSources<'a> {
    /// The extra roots folder.
    pub dir: Option<&'a Path>,
    /// The CCADB "All Certificate Records" CSV.
    pub ccadb_csv: Option<&'a Path>,
    /// Add the Merge Delay Monitor Root.
    pub merge_delay_monitor_root: bool,
    /// The data folder holding [`ACCEPTED_ROOTS_FILE`].
    pub data_dir: Option<&'a Path>,
}

/// Loads the union of every source (see the module documentation), writes it back to
/// [`ACCEPTED_ROOTS_FILE`] if it grew, and returns it.
pub fn load(src: &RootSources<'_>) -> Result<Roots, RootsError> {
    let mut ders: Vec<Vec<u8>> = Vec::new();
    let mut origin: Vec<String> = Vec::new();
    let mut add = |der: Vec<u8>, from: &str, ders: &mut Vec<Vec<u8>>| {
        if !ders.contains(&der) {
            ders.push(der);
            origin.push(from.to_owned());
        }
    };
    let accepted_path = src.data_dir.map(|d| d.join(ACCEPTED_ROOTS_FILE));
    let mut before = 0;
    if let Some(p) = &accepted_path
        && p.exists()
    {
        let text = std::fs::read_to_string(p)?;
        let certs = cairn_pki::pem_certificates(&text)
            .map_err(|_| RootsError::BadPem(p.display().to_string()))?;
        for c in certs {
            add(c, &p.display().to_string(), &mut ders);
        }
        before = ders.len();
    }
    if let Some(csv) = src.ccadb_csv {
        let text = std::fs::read_to_string(csv)?;
        for der in ccadb_roots(&text)? {
            add(der, &csv.display().to_string(), &mut ders);
        }
    }
    if let Some(dir) = src.dir {
        for (der, from) in dir_certificates(dir)? {
            add(der, &from, &mut ders);
        }
    }
    if src.merge_delay_monitor_root {
        for c in cairn_pki::pem_certificates(MERGE_DELAY_MONITOR_ROOT_PEM)
            .map_err(|_| RootsError::BadPem("the Merge Delay Monitor Root".into()))?
        {
            add(c, "the Merge Delay Monitor Root", &mut ders);
        }
    }
    let roots = Roots::from_der(&ders)
        .map_err(|i| RootsError::BadCertificate(origin.get(i).cloned().unwrap_or_default()))?;
    if let Some(p) = &accepted_path
        && ders.len() > before
    {
        let mut pem = String::new();
        for d in &ders {
            pem.push_str(&cairn_pki::pem_encode("CERTIFICATE", d));
        }
        let tmp = p.with_extension("pem.tmp");
        std::fs::write(&tmp, pem)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, p)?;
        crate::storage::sync_parent(p)?;
    }
    Ok(roots)
}

/// The DER roots of a CCADB "All Certificate Records" CSV: rows whose `Certificate Record
/// Type` is `Root Certificate`, whose `Derived Trust Bits` include `Server Authentication` and
/// whose `Status of Root Cert` says `Included` somewhere (each check only if the column is
/// there), with the PEM from `X.509 Certificate (PEM)` (or `PEM Info`).
pub fn ccadb_roots(text: &str) -> Result<Vec<Vec<u8>>, RootsError> {
    let rows = parse_csv(text).ok_or_else(|| RootsError::BadCsv("malformed quoting".into()))?;
    let mut rows = rows.into_iter();
    let header = rows
        .next()
        .ok_or_else(|| RootsError::BadCsv("empty file".into()))?;
    let col = |name: &str| header.iter().position(|h| h.trim() == name);
    let pem_col = col("X.509 Certificate (PEM)")
        .or_else(|| col("PEM Info"))
        .ok_or_else(|| RootsError::BadCsv("no \"X.509 Certificate (PEM)\" column".into()))?;
    let (kind, bits, status) = (
        col("Certificate Record Type"),
        col("Derived Trust Bits"),
        col("Status of Root Cert"),
    );
    let field = |row: &[String], c: Option<usize>| -> Option<String> {
        c.map(|c| row.get(c).cloned().unwrap_or_default())
    };
    let mut out = Vec::new();
    for (n, row) in rows.enumerate() {
        if row.len() == 1 && row[0].trim().is_empty() {
            continue;
        }
        if field(&row, kind).is_some_and(|k| k.trim() != "Root Certificate")
            || field(&row, bits).is_some_and(|b| !b.contains("Server Authentication"))
            || field(&row, status).is_some_and(|s| !s.contains("Included"))
        {
            continue;
        }
        let pem = row.get(pem_col).map(String::as_str).unwrap_or_default();
        let certs = cairn_pki::pem_certificates(pem)
            .ok()
            .filter(|c| c.len() == 1);
        match certs {
            Some(mut c) => out.push(c.remove(0)),
            None => {
                return Err(RootsError::BadCsv(format!(
                    "row {} has no single PEM certificate",
                    n + 2
                )));
            }
        }
    }
    Ok(out)
}

/// RFC 4180 CSV: comma-separated fields, optionally in double quotes (which may hold commas,
/// line breaks and `""` for a quote); CRLF or LF line ends. `None` on an unterminated quote or
/// a quote inside an unquoted field.
pub fn parse_csv(text: &str) -> Option<Vec<Vec<String>>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    quoted = false;
                    // Only a separator or a line end may follow a closing quote.
                    if !matches!(chars.peek(), None | Some(',' | '\r' | '\n')) {
                        return None;
                    }
                }
            } else {
                field.push(c);
            }
            continue;
        }
        match c {
            '"' if at_start => {
                quoted = true;
                at_start = false;
            }
            '"' => return None,
            ',' => {
                row.push(std::mem::take(&mut field));
                at_start = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
                at_start = true;
            }
            c => {
                field.push(c);
                at_start = false;
            }
        }
    }
    if quoted {
        return None;
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    Some(rows)
}

/// Every certificate of the `*.pem` and `*.crt` files of `dir` (name order), with its file.
fn dir_certificates(dir: &Path) -> Result<Vec<(Vec<u8>, String)>, RootsError> {
    let mut files: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "pem" || e == "crt"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f)?;
        let certs = cairn_pki::pem_certificates(&text)
            .map_err(|_| RootsError::BadPem(f.display().to_string()))?;
        for c in certs {
            out.push((c, f.display().to_string()));
        }
    }
    Ok(out)
}

/// Every `CERTIFICATE` in the `*.pem` and `*.crt` files of `dir`, files in name order.
pub fn load_dir(dir: &Path) -> Result<Roots, RootsError> {
    let (ders, origin): (Vec<_>, Vec<_>) = dir_certificates(dir)?.into_iter().unzip();
    Roots::from_der(&ders)
        .map_err(|i| RootsError::BadCertificate(origin.get(i).cloned().unwrap_or_default()))
}
