//! CA keys in hardware: a PKCS#11 signer built on `cryptoki`. A key is named by the module
//! (the vendor's `.so`), the token label and the key's label or ID; the user PIN comes from an
//! environment variable or a file, never from configuration text. The private key never leaves
//! the token: this crate asks the token to sign and checks the signature with the public key
//! before handing it out.
//!
//! Signing runs in parallel over a pool of sessions (one PKCS#11 session can run one operation at
//! a time). A failed signature is an error; there is no fallback to any other key.

pub mod softhsm;
mod spki_build;

use cairn_pki::{ExternalSigner, ExternalSignerError, KeyAlgorithm, ecdsa_raw_to_der};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
pub use cryptoki::types::AuthPin;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

pub use spki_build::{ec_spki, rsa_spki};

/// Default number of sessions a signer keeps open.
pub const DEFAULT_SESSIONS: usize = 8;
/// How long a signature waits for a free session before failing.
const SESSION_WAIT: Duration = Duration::from_secs(30);

/// Where a key lives in an HSM. Either `key_label` or `key_id` (or both) must be set; the PIN
/// comes from exactly one of `pin_env` and `pin_file`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11KeyConfig {
    /// The PKCS#11 module (e.g. `/usr/lib/softhsm/libsofthsm2.so`).
    pub module: PathBuf,
    /// The label of the token holding the key.
    pub token_label: String,
    /// The environment variable holding the user PIN.
    #[serde(default)]
    pub pin_env: Option<String>,
    /// A file holding the user PIN (trailing newline ignored).
    #[serde(default)]
    pub pin_file: Option<PathBuf>,
    /// The key's CKA_LABEL.
    #[serde(default)]
    pub key_label: Option<String>,
    /// The key's CKA_ID, hex.
    #[serde(default)]
    pub key_id: Option<String>,
    /// How many sessions sign in parallel (default 8).
    #[serde(default = "default_sessions")]
    pub sessions: usize,
}

fn default_sessions() -> usize {
    DEFAULT_SESSIONS
}

/// Why an HSM key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HsmError {
    /// The configuration is incomplete or contradictory.
    #[error("PKCS#11 configuration: {0}")]
    Config(String),
    /// The PIN could not be read.
    #[error("PKCS#11 PIN: {0}")]
    Pin(String),
    /// The module could not be loaded or initialized.
    #[error("PKCS#11 module {module}: {error}")]
    Module {
        /// The module path.
        module: String,
        /// What went wrong.
        error: String,
    },
    /// No token with the label is present.
    #[error(
        "no PKCS#11 token labelled {0:?} (check token_label and that the token is initialized)"
    )]
    NoToken(String),
    /// Logging in failed.
    #[error("PKCS#11 login to token {token:?} failed: {error}")]
    Login {
        /// The token label.
        token: String,
        /// What went wrong (e.g. the PIN is wrong).
        error: String,
    },
    /// The key is not on the token (or not uniquely).
    #[error("PKCS#11 key {key} on token {token:?}: {error}")]
    Key {
        /// The token label.
        token: String,
        /// The key's label or ID.
        key: String,
        /// What went wrong.
        error: String,
    },
    /// A PKCS#11 call failed.
    #[error("PKCS#11 {0}")]
    Call(String),
}

impl Pkcs11KeyConfig {
    /// Checks the fields that can be checked without the HSM.
    pub fn validate(&self) -> Result<(), HsmError> {
        if self.token_label.trim().is_empty() {
            return Err(HsmError::Config("token_label is empty".into()));
        }
        match (&self.pin_env, &self.pin_file) {
            (Some(_), Some(_)) => {
                return Err(HsmError::Config(
                    "set only one of pin_env and pin_file".into(),
                ));
            }
            (None, None) => {
                return Err(HsmError::Config(
                    "set pin_env or pin_file (the PIN is never written in the config)".into(),
                ));
            }
            _ => {}
        }
        if self.key_label.is_none() && self.key_id.is_none() {
            return Err(HsmError::Config("set key_label or key_id".into()));
        }
        if let Some(id) = &self.key_id {
            hex::decode(id)
                .map_err(|e| HsmError::Config(format!("key_id {id:?} is not hex: {e}")))?;
        }
        if self.sessions == 0 || self.sessions > 256 {
            return Err(HsmError::Config("sessions must be 1 to 256".into()));
        }
        Ok(())
    }

    /// Reads the PIN from the environment variable or file.
    pub fn read_pin(&self) -> Result<AuthPin, HsmError> {
        let pin = if let Some(var) = &self.pin_env {
            std::env::var(var)
                .map_err(|_| HsmError::Pin(format!("environment variable {var} is not set")))?
        } else if let Some(file) = &self.pin_file {
            std::fs::read_to_string(file)
                .map_err(|e| HsmError::Pin(format!("cannot read {}: {e}", file.display())))?
                .trim_end_matches(['\r', '\n'])
                .to_owned()
        } else {
            return Err(HsmError::Config("set pin_env or pin_file".into()));
        };
        if pin.is_empty() {
            return Err(HsmError::Pin("the PIN is empty".into()));
        }
        Ok(AuthPin::new(pin.into_boxed_str()))
    }

    /// `label=…` / `id=…`, for messages.
    fn key_name(&self) -> String {
        match (&self.key_label, &self.key_id) {
            (Some(l), Some(i)) => format!("label={l:?} id={i}"),
            (Some(l), None) => format!("label={l:?}"),
            (None, Some(i)) => format!("id={i}"),
            (None, None) => "(unnamed)".into(),
        }
    }

    fn key_template(&self, class: ObjectClass) -> Result<Vec<Attribute>, HsmError> {
        let mut template = vec![Attribute::Class(class)];
        if let Some(label) = &self.key_label {
            template.push(Attribute::Label(label.as_bytes().to_vec()));
        }
        if let Some(id) = &self.key_id {
            let id = hex::decode(id)
                .map_err(|e| HsmError::Config(format!("key_id {id:?} is not hex: {e}")))?;
            template.push(Attribute::Id(id));
        }
        Ok(template)
    }
}

/// One initialized context per module path: C_Initialize may run once per process.
fn module(path: &Path) -> Result<Pkcs11, HsmError> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let modules = MODULES.get_or_init(|| Mutex::new(HashMap::new()));
    let mut modules = modules
        .lock()
        .map_err(|_| HsmError::Call("module table poisoned".into()))?;
    if let Some(ctx) = modules.get(path) {
        return Ok(ctx.clone());
    }
    let err = |e: CkError| HsmError::Module {
        module: path.display().to_string(),
        error: e.to_string(),
    };
    let ctx = Pkcs11::new(path).map_err(err)?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(err(e)),
    }
    modules.insert(path.to_path_buf(), ctx.clone());
    Ok(ctx)
}

/// A short name for a PKCS#11 failure (`CKR_PIN_INCORRECT` → "the PIN is incorrect").
fn describe(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(RvError::PinIncorrect, _) => "the PIN is incorrect".into(),
        CkError::Pkcs11(RvError::PinLocked, _) => "the PIN is locked".into(),
        CkError::Pkcs11(rv, function) => format!("{function:?} returned {rv:?}"),
        other => other.to_string(),
    }
}

/// Finds the slot whose token has `label`.
fn find_slot(ctx: &Pkcs11, label: &str) -> Result<Slot, HsmError> {
    let slots = ctx
        .get_slots_with_token()
        .map_err(|e| HsmError::Call(describe(&e)))?;
    for slot in slots {
        let info = ctx
            .get_token_info(slot)
            .map_err(|e| HsmError::Call(describe(&e)))?;
        if info.label().trim_end() == label {
            return Ok(slot);
        }
    }
    Err(HsmError::NoToken(label.to_owned()))
}

/// Opens a read-write session on the token labelled `token_label` and logs the user in.
pub fn open_session(
    module_path: &Path,
    token_label: &str,
    pin: &AuthPin,
) -> Result<Session, HsmError> {
    let ctx = module(module_path)?;
    let slot = find_slot(&ctx, token_label)?;
    let session = ctx
        .open_rw_session(slot)
        .map_err(|e| HsmError::Call(format!("opening a session: {}", describe(&e))))?;
    login(&session, module_path, token_label, pin)?;
    Ok(session)
}

/// Logs the user in to the token behind `session`. PKCS#11 logs an application in per token,
/// not per session: once one key of a token is open, every later C_Login on that token answers
/// "already logged in" whatever the PIN. So the PIN of each login that succeeded is remembered
/// (as a digest, per module and token), and a later key of the same token configured with a
/// different PIN is refused as the token would refuse it, instead of riding on the first login.
fn login(session: &Session, module: &Path, token: &str, pin: &AuthPin) -> Result<(), HsmError> {
    /// (module, token label) → SHA-256 of the PIN that logged in.
    type Logins = HashMap<(PathBuf, String), Vec<u8>>;
    static LOGINS: OnceLock<Mutex<Logins>> = OnceLock::new();
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        secrecy::ExposeSecret::expose_secret(pin).as_bytes(),
    )
    .as_ref()
    .to_vec();
    let logins = LOGINS.get_or_init(|| Mutex::new(HashMap::new()));
    let mut logins = logins
        .lock()
        .map_err(|_| HsmError::Call("login table poisoned".into()))?;
    let key = (module.to_path_buf(), token.to_owned());
    let refused = |error: String| HsmError::Login {
        token: token.to_owned(),
        error,
    };
    match session.login(UserType::User, Some(pin)) {
        Ok(()) => {
            logins.insert(key, digest);
            Ok(())
        }
        Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => match logins.get(&key) {
            Some(known) if *known != digest => Err(refused(
                "the PIN is incorrect (this process is logged in to the token with another PIN)"
                    .into(),
            )),
            _ => Ok(()),
        },
        Err(e) => Err(refused(describe(&e))),
    }
}

/// Generates a key pair of type `algorithm` on the token behind `session`, labelled `label` with
/// CKA_ID `id`: private half sensitive, not extractable, sign-only. Returns the public key
/// (SubjectPublicKeyInfo DER). Refuses if a private key with that label or ID already exists.
pub fn generate_key_pair(
    session: &Session,
    algorithm: KeyAlgorithm,
    label: &str,
    id: &[u8],
) -> Result<Vec<u8>, HsmError> {
    let key_err = |error: String| HsmError::Key {
        token: String::new(),
        key: format!("label={label:?} id={}", hex::encode(id)),
        error,
    };
    for attr in [
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(id.to_vec()),
    ] {
        let existing = session
            .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY), attr])
            .map_err(|e| HsmError::Call(describe(&e)))?;
        if !existing.is_empty() {
            return Err(key_err(
                "a private key with this label or ID already exists; refusing to make another"
                    .into(),
            ));
        }
    }
    let common = |public: bool| {
        vec![
            Attribute::Token(true),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.to_vec()),
            Attribute::Private(!public),
        ]
    };
    let mut public = common(true);
    public.push(Attribute::Verify(true));
    let mut private = common(false);
    private.extend([
        Attribute::Sign(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
    ]);
    let mechanism = match algorithm {
        KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384 => {
            let curve = if algorithm == KeyAlgorithm::EcdsaP256 {
                cairn_pki::key::OID_P256
            } else {
                cairn_pki::key::OID_P384
            };
            public.push(Attribute::EcParams(
                der::Encode::to_der(&curve).map_err(|e| HsmError::Call(e.to_string()))?,
            ));
            Mechanism::EccKeyPairGen
        }
        KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
            let bits: u64 = match algorithm {
                KeyAlgorithm::Rsa2048 => 2048,
                KeyAlgorithm::Rsa3072 => 3072,
                _ => 4096,
            };
            public.push(Attribute::ModulusBits(bits.into()));
            public.push(Attribute::PublicExponent(vec![0x01, 0x00, 0x01]));
            Mechanism::RsaPkcsKeyPairGen
        }
    };
    let (public_handle, _private) = session
        .generate_key_pair(&mechanism, &public, &private)
        .map_err(|e| key_err(format!("key generation failed: {}", describe(&e))))?;
    read_public_key(session, public_handle).map_err(key_err)
}

/// The SubjectPublicKeyInfo of a public key object.
fn read_public_key(session: &Session, handle: ObjectHandle) -> Result<Vec<u8>, String> {
    let attrs = session
        .get_attributes(handle, &[AttributeType::KeyType])
        .map_err(|e| describe(&e))?;
    let key_type = attrs.iter().find_map(|a| match a {
        Attribute::KeyType(t) => Some(*t),
        _ => None,
    });
    match key_type {
        Some(KeyType::EC) => {
            let attrs = session
                .get_attributes(handle, &[AttributeType::EcParams, AttributeType::EcPoint])
                .map_err(|e| describe(&e))?;
            let mut params = None;
            let mut point = None;
            for a in attrs {
                match a {
                    Attribute::EcParams(p) => params = Some(p),
                    Attribute::EcPoint(p) => point = Some(p),
                    _ => {}
                }
            }
            let (Some(params), Some(point)) = (params, point) else {
                return Err("the EC public key has no CKA_EC_PARAMS or CKA_EC_POINT".into());
            };
            ec_spki(&params, &point)
        }
        Some(KeyType::RSA) => {
            let attrs = session
                .get_attributes(
                    handle,
                    &[AttributeType::Modulus, AttributeType::PublicExponent],
                )
                .map_err(|e| describe(&e))?;
            let mut n = None;
            let mut e = None;
            for a in attrs {
                match a {
                    Attribute::Modulus(m) => n = Some(m),
                    Attribute::PublicExponent(x) => e = Some(x),
                    _ => {}
                }
            }
            let (Some(n), Some(e)) = (n, e) else {
                return Err("the RSA public key has no CKA_MODULUS or CKA_PUBLIC_EXPONENT".into());
            };
            rsa_spki(&n, &e)
        }
        other => Err(format!(
            "unsupported key type {other:?} (ECDSA P-256/P-384 or RSA)"
        )),
    }
}

/// The sessions a signer signs with. A signature takes one, and puts it back when done.
struct SessionPool {
    idle: Mutex<Vec<Session>>,
    freed: Condvar,
    in_use: AtomicUsize,
    high_water: AtomicUsize,
}

impl SessionPool {
    fn take(&self) -> Result<Session, ExternalSignerError> {
        fn poisoned<T>(_: T) -> ExternalSignerError {
            ExternalSignerError("PKCS#11 session pool poisoned".into())
        }
        let mut idle = self.idle.lock().map_err(poisoned)?;
        loop {
            if let Some(session) = idle.pop() {
                let busy = self.in_use.fetch_add(1, Ordering::Relaxed) + 1;
                self.high_water.fetch_max(busy, Ordering::Relaxed);
                return Ok(session);
            }
            let (guard, timeout) = self
                .freed
                .wait_timeout(idle, SESSION_WAIT)
                .map_err(poisoned)?;
            idle = guard;
            if timeout.timed_out() && idle.is_empty() {
                return Err(ExternalSignerError(format!(
                    "no PKCS#11 session became free within {}s",
                    SESSION_WAIT.as_secs()
                )));
            }
        }
    }

    fn release(&self) {
        self.in_use.fetch_sub(1, Ordering::Relaxed);
    }

    fn give_back(&self, session: Session) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(session);
            self.freed.notify_one();
        }
    }
}

/// A private key in a PKCS#11 token, signing the way X.509 wants (see [`ExternalSigner`]).
pub struct Pkcs11Signer {
    config: Pkcs11KeyConfig,
    ctx: Pkcs11,
    slot: Slot,
    pin: AuthPin,
    key: ObjectHandle,
    algorithm: KeyAlgorithm,
    spki_der: Vec<u8>,
    pool: SessionPool,
}

impl fmt::Debug for Pkcs11Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Signer")
            .field("key", &self.describe())
            .field("algorithm", &self.algorithm)
            .field("sessions", &self.config.sessions)
            .finish_non_exhaustive()
    }
}

impl Pkcs11Signer {
    /// Loads the module, finds the token, logs in, finds the private key and its public key, opens
    /// `config.sessions` sessions and makes one test signature (verified with the public key), so
    /// a wrong PIN, a missing key or a key that cannot sign is a start-up error.
    pub fn open(config: &Pkcs11KeyConfig) -> Result<Pkcs11Signer, HsmError> {
        config.validate()?;
        let pin = config.read_pin()?;
        let ctx = module(&config.module)?;
        let slot = find_slot(&ctx, &config.token_label)?;
        let key_err = |error: String| HsmError::Key {
            token: config.token_label.clone(),
            key: config.key_name(),
            error,
        };
        let first = ctx
            .open_ro_session(slot)
            .map_err(|e| HsmError::Call(format!("opening a session: {}", describe(&e))))?;
        login(&first, &config.module, &config.token_label, &pin)?;
        let private = first
            .find_objects(&config.key_template(ObjectClass::PRIVATE_KEY)?)
            .map_err(|e| key_err(describe(&e)))?;
        let key = match private.as_slice() {
            [one] => *one,
            [] => return Err(key_err("no such private key on the token".into())),
            more => {
                return Err(key_err(format!(
                    "{} private keys match; name the key by label and ID",
                    more.len()
                )));
            }
        };
        let public = first
            .find_objects(&config.key_template(ObjectClass::PUBLIC_KEY)?)
            .map_err(|e| key_err(describe(&e)))?;
        let [public] = public.as_slice() else {
            return Err(key_err(format!(
                "expected exactly one public key object next to the private key, found {}",
                public.len()
            )));
        };
        let spki_der = read_public_key(&first, *public).map_err(key_err)?;
        let algorithm = KeyAlgorithm::from_spki_der(&spki_der)
            .map_err(|e| key_err(format!("public key: {e}")))?;
        let mut sessions = vec![first];
        for _ in 1..config.sessions {
            sessions.push(
                ctx.open_ro_session(slot)
                    .map_err(|e| HsmError::Call(format!("opening a session: {}", describe(&e))))?,
            );
        }
        let signer = Pkcs11Signer {
            config: config.clone(),
            ctx,
            slot,
            pin,
            key,
            algorithm,
            spki_der,
            pool: SessionPool {
                idle: Mutex::new(sessions),
                freed: Condvar::new(),
                in_use: AtomicUsize::new(0),
                high_water: AtomicUsize::new(0),
            },
        };
        signer
            .sign(b"cairn start-up test signature")
            .map_err(|e| key_err(format!("test signature failed: {e}")))?;
        tracing::info!(key = %signer.describe(), algorithm = %algorithm, sessions = config.sessions, "PKCS#11 key ready");
        Ok(signer)
    }

    /// The most sessions that were ever signing at the same time.
    pub fn max_parallel_signatures(&self) -> usize {
        self.pool.high_water.load(Ordering::Relaxed)
    }

    /// Opens the key as an [`ExternalSigner`].
    pub fn open_arc(config: &Pkcs11KeyConfig) -> Result<Arc<dyn ExternalSigner>, HsmError> {
        Ok(Arc::new(Self::open(config)?))
    }

    fn sign_with(&self, session: &Session, message: &[u8]) -> Result<Vec<u8>, CkError> {
        match self.algorithm {
            KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384 => {
                let digest_alg = if self.algorithm == KeyAlgorithm::EcdsaP256 {
                    &aws_lc_rs::digest::SHA256
                } else {
                    &aws_lc_rs::digest::SHA384
                };
                let digest = aws_lc_rs::digest::digest(digest_alg, message);
                session.sign(&Mechanism::Ecdsa, self.key, digest.as_ref())
            }
            _ => session.sign(&Mechanism::Sha256RsaPkcs, self.key, message),
        }
    }

    /// A fresh session to replace one the token closed.
    fn reopen(&self) -> Option<Session> {
        let session = self.ctx.open_ro_session(self.slot).ok()?;
        login(
            &session,
            &self.config.module,
            &self.config.token_label,
            &self.pin,
        )
        .ok()?;
        Some(session)
    }
}

impl ExternalSigner for Pkcs11Signer {
    fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// Counted as `cairn_hsm_signatures_total{key, result}` (`ok` or `error`; the
    /// `HsmSigningFailing` alert).
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, ExternalSignerError> {
        let result = self.sign_checked(message);
        let key = self.describe();
        if let Err(e) = &result {
            tracing::error!(%key, error = %e, "PKCS#11 signature failed");
        }
        metrics::counter!(
            "cairn_hsm_signatures_total",
            "key" => key,
            "result" => if result.is_ok() { "ok" } else { "error" },
        )
        .increment(1);
        result
    }

    fn describe(&self) -> String {
        Pkcs11Signer::describe(self)
    }
}

impl Pkcs11Signer {
    fn sign_checked(&self, message: &[u8]) -> Result<Vec<u8>, ExternalSignerError> {
        let session = self.pool.take()?;
        let result = self.sign_with(&session, message);
        self.pool.release();
        match &result {
            Err(CkError::Pkcs11(
                RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::DeviceRemoved
                | RvError::TokenNotPresent
                | RvError::UserNotLoggedIn,
                _,
            )) => {
                drop(session);
                if let Some(fresh) = self.reopen() {
                    self.pool.give_back(fresh);
                } else {
                    tracing::error!(key = %self.describe(), "cannot reopen a PKCS#11 session; the pool shrinks");
                }
            }
            _ => self.pool.give_back(session),
        }
        let raw = result.map_err(|e| ExternalSignerError(describe(&e)))?;
        let signature = if self.algorithm.is_rsa() {
            raw
        } else {
            ecdsa_raw_to_der(&raw)
                .ok_or_else(|| ExternalSignerError("malformed ECDSA signature".into()))?
        };
        // The token's answer is checked before anyone relies on it.
        let alg = spki::AlgorithmIdentifierRef {
            oid: if self.algorithm.is_rsa() {
                cairn_pki::key::OID_SHA256_WITH_RSA
            } else if self.algorithm == KeyAlgorithm::EcdsaP256 {
                cairn_pki::key::OID_ECDSA_SHA256
            } else {
                cairn_pki::key::OID_ECDSA_SHA384
            },
            parameters: self.algorithm.is_rsa().then_some(der::asn1::AnyRef::NULL),
        };
        if !cairn_pki::verify_x509_signature(&self.spki_der, &alg, message, &signature) {
            return Err(ExternalSignerError(
                "the token returned a signature that does not verify with the key's public key"
                    .into(),
            ));
        }
        Ok(signature)
    }

    fn describe(&self) -> String {
        let mut s = format!("pkcs11:token={}", self.config.token_label);
        if let Some(label) = &self.config.key_label {
            s.push_str(&format!(";object={label}"));
        }
        if let Some(id) = &self.config.key_id {
            s.push_str(&format!(";id={id}"));
        }
        s
    }
}
