//! The server-rendered pages. Every page under `/accounts/{account}` first checks that the
//! logged-in person is a member of that account, and every task or credential is looked up
//! with the account in the query, so another account's objects answer 404 exactly like ones
//! that do not exist. Every POST of a logged-in session must carry the session's CSRF token
//! (403 otherwise) — checked before anything else is read from the form.

use crate::metric::{Metric, MetricForm, MetricKind, PERIODS};
use crate::provision::{self, SHARED_HELPER};
use crate::store::{Account, RemoveMember, Session};
use crate::{Console, ConsoleError, MOUNT, SESSION_COOKIE, auth};
use axum::Router;
use axum::extract::{ConnectInfo, Extension, Form, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cairn_dap_messages::{Encode, HpkeConfig, HpkeConfigId};
use minijinja::{Environment, Value, context};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

type St = State<Arc<Console>>;
type Fields = Form<HashMap<String, String>>;
type Peer = Option<Extension<ConnectInfo<SocketAddr>>>;

/// A page's answer: errors become an HTML page.
struct Page(Result<Response, ConsoleError>);

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let mut resp = match self.0 {
            Ok(r) => r,
            Err(e) => e.into_page(),
        };
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                 connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
        h.entry(header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-store"));
        resp
    }
}

impl From<Result<Response, ConsoleError>> for Page {
    fn from(r: Result<Response, ConsoleError>) -> Page {
        Page(r)
    }
}

/// The templates, compiled into the binary.
pub(crate) fn templates() -> Result<Environment<'static>, ConsoleError> {
    let mut env = Environment::new();
    for (name, text) in [
        ("base.html", include_str!("../templates/base.html")),
        ("login.html", include_str!("../templates/login.html")),
        ("accounts.html", include_str!("../templates/accounts.html")),
        ("account.html", include_str!("../templates/account.html")),
        (
            "credential_new.html",
            include_str!("../templates/credential_new.html"),
        ),
        ("task_new.html", include_str!("../templates/task_new.html")),
        ("task.html", include_str!("../templates/task.html")),
        ("password.html", include_str!("../templates/password.html")),
    ] {
        env.add_template(name, text)?;
    }
    env.add_filter("when", |secs: u64| {
        // Days since the epoch → a civil date (UTC), for lists.
        let days = i64::try_from(secs / 86400).unwrap_or(0);
        let (y, m, d) = civil_from_days(days);
        format!("{y:04}-{m:02}-{d:02}")
    });
    env.add_filter("stamp", crate::chart::stamp);
    Ok(env)
}

/// Howard Hinnant's `civil_from_days`.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

pub(crate) fn routes() -> Router<Arc<Console>> {
    Router::new()
        .route("/", get(home))
        .route("/assets/console.js", get(script))
        .route("/assets/console.css", get(stylesheet))
        .route("/login", get(login_page).post(login))
        .route("/signup", get(signup_page).post(signup))
        .route("/logout", post(logout))
        .route("/accounts", get(accounts))
        .route("/accounts/{account}", get(account))
        .route("/password", get(password_page).post(change_password))
        .route("/accounts/{account}/members", post(add_member))
        .route("/accounts/{account}/members/remove", post(remove_member))
        .route("/accounts/{account}/tokens", post(create_token))
        .route(
            "/accounts/{account}/tokens/{token}/revoke",
            post(revoke_token),
        )
        .route("/accounts/{account}/helpers", post(add_helper))
        .route("/accounts/{account}/credentials/new", get(credential_page))
        .route("/accounts/{account}/credentials", post(add_credential))
        .route(
            "/accounts/{account}/credentials/generate",
            post(generate_credential),
        )
        .route("/accounts/{account}/tasks/new", get(new_task_page))
        .route("/accounts/{account}/tasks", post(create_task))
        .route("/accounts/{account}/tasks/{task}", get(task_page))
        .route("/accounts/{account}/tasks/{task}/task.json", get(task_json))
        .route("/accounts/{account}/tasks/{task}/delete", post(delete_task))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=300"),
    );
    r
}

async fn script() -> Page {
    Page(Ok(asset(
        "text/javascript; charset=utf-8",
        include_str!("../assets/console.js"),
    )))
}

async fn stylesheet() -> Page {
    Page(Ok(asset(
        "text/css; charset=utf-8",
        include_str!("../assets/console.css"),
    )))
}

fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

fn session_hash(headers: &HeaderMap) -> Option<[u8; 32]> {
    cookie_value(headers, SESSION_COOKIE).map(|v| auth::sha256(v.as_bytes()))
}

async fn session(c: &Console, headers: &HeaderMap) -> Result<Option<Session>, ConsoleError> {
    match session_hash(headers) {
        Some(h) => Ok(c.store.get_session(h, c.now()).await?),
        None => Ok(None),
    }
}

/// The logged-in session, or a redirect to the log-in page.
async fn require_session(c: &Console, headers: &HeaderMap) -> Result<Session, Response> {
    match session(c, headers).await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(Redirect::to(&format!("{MOUNT}/login")).into_response()),
        Err(e) => Err(e.into_page()),
    }
}

/// The session of a state-changing request: logged in, and the form's CSRF token matches.
async fn require_post(
    c: &Console,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<Session, Response> {
    let s = require_session(c, headers).await?;
    let sent = form.get("csrf").map(String::as_bytes).unwrap_or_default();
    if !auth::constant_time_eq(sent, s.csrf_token.as_bytes()) {
        return Err(ConsoleError::Forbidden("missing or wrong CSRF token").into_page());
    }
    Ok(s)
}

/// The account, if the session's person is a member; else 404.
async fn member(c: &Console, s: &Session, account_id: &str) -> Result<Account, ConsoleError> {
    c.store
        .get_account_for_member(account_id, &s.user_id)
        .await?
        .ok_or(ConsoleError::NotFound)
}

fn render(c: &Console, name: &str, ctx: Value) -> Result<Response, ConsoleError> {
    let html = c.templates.get_template(name)?.render(ctx)?;
    Ok(Html(html).into_response())
}

fn base(s: Option<&Session>, account: Option<&Account>) -> Value {
    context! {
        m => MOUNT,
        user => s.map(|s| s.email.clone()),
        csrf => s.map(|s| s.csrf_token.clone()),
        account => account,
    }
}

fn with(base: Value, extra: Value) -> Value {
    context! { ..extra, ..base }
}

macro_rules! page {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return Page(Ok(r)),
        }
    };
}

macro_rules! tryp {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return Page(Err(e.into())),
        }
    };
}

fn see_other(path: &str) -> Response {
    Redirect::to(&format!("{MOUNT}{path}")).into_response()
}

async fn home(State(c): St, headers: HeaderMap) -> Page {
    match tryp!(session(&c, &headers).await) {
        Some(_) => Page(Ok(see_other("/accounts"))),
        None => Page(Ok(see_other("/login"))),
    }
}

fn login_form(
    c: &Console,
    signup: bool,
    email: &str,
    error: Option<String>,
) -> Result<Response, ConsoleError> {
    render(
        c,
        "login.html",
        with(base(None, None), context! { signup, email, error }),
    )
}

async fn login_page(State(c): St) -> Page {
    login_form(&c, false, "", None).into()
}

async fn signup_page(State(c): St) -> Page {
    login_form(&c, true, "", None).into()
}

fn field<'f>(form: &'f HashMap<String, String>, name: &str) -> &'f str {
    form.get(name).map_or("", |s| s.trim())
}

/// Starts a session for `user_id`: the cookie and a redirect to the accounts.
async fn start_session(c: &Console, user_id: &str) -> Result<Response, ConsoleError> {
    let cookie = auth::random_token::<32>().ok_or(ConsoleError::Internal("no randomness"))?;
    let csrf = auth::random_token::<32>().ok_or(ConsoleError::Internal("no randomness"))?;
    let now = c.now();
    c.store
        .put_session(
            auth::sha256(cookie.as_bytes()),
            user_id,
            &csrf,
            now + c.config.session_secs,
            now,
        )
        .await?;
    let secure = if c.config.secure_cookies() {
        "; Secure"
    } else {
        ""
    };
    let value = format!(
        "{SESSION_COOKIE}={cookie}; Path={MOUNT}; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        c.config.session_secs
    );
    let mut resp = see_other("/accounts");
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&value).map_err(|_| ConsoleError::Internal("cookie"))?,
    );
    Ok(resp)
}

async fn signup(State(c): St, Form(form): Fields) -> Page {
    let email = field(&form, "email").to_lowercase();
    let password = form.get("password").cloned().unwrap_or_default();
    let again = |e: &str| {
        login_form(&c, true, &email, Some(e.to_owned()))
            .map(|r| (StatusCode::BAD_REQUEST, r).into_response())
    };
    if email.len() > 254 || !email.contains('@') || email.starts_with('@') || email.ends_with('@') {
        return again("give an e-mail address").into();
    }
    if password.chars().count() < 12 || password.len() > 1024 {
        return again("the password must be 12 to 1024 characters").into();
    }
    if !c.config.open_signup && tryp!(c.store.get_user_by_email(&email).await).is_none() {
        // Closed sign-up still lets the very first person in (the operator).
        let anyone: bool = tryp!(c.store.any_user().await);
        if anyone {
            return Page(Err(ConsoleError::Forbidden(
                "sign-up is closed on this service; ask a member to add you",
            )));
        }
    }
    let Some(hash) = auth::hash_password(password).await else {
        return Page(Err(ConsoleError::Internal("password hashing")));
    };
    let (Some(user_id), Some(account_id)) =
        (auth::random_token::<16>(), auth::random_token::<16>())
    else {
        return Page(Err(ConsoleError::Internal("no randomness")));
    };
    match c
        .store
        .put_user_with_account(&user_id, &email, &hash, &account_id, c.now())
        .await
    {
        Ok(()) => {}
        Err(crate::store::StoreError::Conflict(_)) => {
            return again("that address already has a login").into();
        }
        Err(e) => return Page(Err(e.into())),
    }
    tracing::info!(user = %user_id, "console sign-up");
    start_session(&c, &user_id).await.into()
}

async fn login(State(c): St, peer: Peer, Form(form): Fields) -> Page {
    let email = field(&form, "email").to_lowercase();
    let password = form.get("password").cloned().unwrap_or_default();
    let client = peer.map(|Extension(ConnectInfo(a))| a.ip());
    let now = c.now();
    if let Some(wait) = tryp!(c.limiter.blocked(&email, client, now).await) {
        return Page(Err(ConsoleError::TooManyRequests(wait)));
    }
    let user = tryp!(c.store.get_user_by_email(&email).await);
    let ok = auth::verify_password(user.as_ref().map(|u| u.password_hash.clone()), password).await;
    match user {
        Some(u) if ok => {
            tryp!(c.limiter.succeeded(&email).await);
            start_session(&c, &u.user_id).await.into()
        }
        _ => {
            tryp!(c.limiter.failed(&email, client, now).await);
            login_form(
                &c,
                false,
                &email,
                Some("wrong e-mail address or password".into()),
            )
            .map(|r| (StatusCode::UNAUTHORIZED, r).into_response())
            .into()
        }
    }
}

async fn logout(State(c): St, headers: HeaderMap, Form(form): Fields) -> Page {
    page!(require_post(&c, &headers, &form).await);
    if let Some(h) = session_hash(&headers) {
        tryp!(c.store.delete_session(h).await);
    }
    let mut resp = see_other("/login");
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "cairn_console_session=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    Page(Ok(resp))
}

async fn accounts(State(c): St, headers: HeaderMap) -> Page {
    let s = page!(require_session(&c, &headers).await);
    let list = tryp!(c.store.get_accounts_of(&s.user_id).await);
    if let [only] = list.as_slice() {
        return Page(Ok(see_other(&format!("/accounts/{}", only.account_id))));
    }
    render(
        &c,
        "accounts.html",
        with(base(Some(&s), None), context! { accounts => list }),
    )
    .into()
}

async fn account_page(
    c: &Console,
    s: &Session,
    a: &Account,
    new_token: Option<String>,
    error: Option<String>,
) -> Result<Response, ConsoleError> {
    let ctx = context! {
        tasks => c.store.get_tasks(&a.account_id).await?,
        credentials => c.store.get_credentials(&a.account_id).await?,
        helpers => c.store.get_helpers(&a.account_id).await?,
        shared_helper => c.shared_helper.is_some(),
        members => c.store.get_members(&a.account_id).await?,
        tokens => c.store.get_api_tokens(&a.account_id).await?,
        new_token,
        error,
    };
    render(c, "account.html", with(base(Some(s), Some(a)), ctx))
}

async fn account(State(c): St, headers: HeaderMap, Path(account_id): Path<String>) -> Page {
    let s = page!(require_session(&c, &headers).await);
    let a = tryp!(member(&c, &s, &account_id).await);
    account_page(&c, &s, &a, None, None).await.into()
}

async fn add_member(
    State(c): St,
    headers: HeaderMap,
    Path(account_id): Path<String>,
    Form(form): Fields,
) -> Page {
    let s = page!(require_post(&c, &headers, &form).await);
    let a = tryp!(member(&c, &s, &account_id).await);
    let email = field(&form, "email").to_lowercase();
    if !tryp!(c.store.put_membership(&a.account_id, &email, c.now()).await) {
        return account_page(
            &c,
            &s,
            &a,
            None,
            Some("nobody has a login with that address".into()),
        )
        .await
        .map(|r| (StatusCode::BAD_REQUEST, r).into_response())
        .into();
    }
    Page(Ok(see_other(&format!("/accounts/{account_id}"))))
}

/// Removes a member (or the caller, leaving); an account keeps at least one member.
async fn remove_member(
    State(c): St,
    headers: HeaderMap,
    Path(account_id): Path<String>,
    Form(form): Fields,
) -> Page {
    let s = page!(require_post(&c, &headers, &form).await);
    let a = tryp!(member(&c, &s, &account_id).await);
    let email = field(&form, "email").to_lowercase();
    let error = match tryp!(c.store.remove_member(&a.account_id, &email).await) {
        RemoveMember::Removed => {
            tracing::info!(account = %a.account_id, by = %s.user_id, "console member removed");
            let back = if email == s.email {
                "/accounts".to_owned()
            } else {
                format!("/accounts/{account_id}")
            };
            return Page(Ok(see_other(&back)));
        }
        RemoveMember::NotAMember => "nobody with that address is a member",
        RemoveMember::LastMember => "an account keeps at least one member",
    };
    account_page(&c, &s, &a, None, Some(error.into()))
        .await
        .map(|r| (StatusCode::BAD_REQUEST, r).into_response())
        .into()
}

fn password_form(c: &Console, s: &Session, changed: bool, error: Option<String>) -> Page {
    render(
        c,
        "password.html",
        with(base(Some(s), None), context! { changed, error }),
    )
    .into()
}

async fn password_page(State(c): St, headers: HeaderMap) -> Page {
    let s = page!(require_session(&c, &headers).await);
    password_form(&c, &s, false, None)
}

/// Changes the caller's password after checking the current one (counted by the log-in
/// limit like a log-in, so a stolen session cannot guess it), and logs out their other
/// sessions.
async fn change_password(State(c): St, headers: HeaderMap, peer: Peer, Form(form): Fields) -> Page {
    let s = page!(require_post(&c, &headers, &form).await);
    let client = peer.map(|Extension(ConnectInfo(a))| a.ip());
    let now = c.now();
    if let Some(wait) = tryp!(c.limiter.blocked(&s.email, client, now).await) {
        return Page(Err(ConsoleError::TooManyRequests(wait)));
    }
    let current = form.get("current").cloned().unwrap_or_default();
    let new = form.get("new").cloned().unwrap_or_default();
    let user = tryp!(c.store.get_user_by_email(&s.email).await);
    let hash = user.map(|u| u.password_hash);
    if !auth::verify_password(hash, current).await {
        tryp!(c.limiter.failed(&s.email, client, now).await);
        let Page(r) = password_form(&c, &s, false, Some("the current password is wrong".into()));
        return Page(r.map(|r| (StatusCode::UNAUTHORIZED, r).into_response()));
    }
    if new.chars().count() < 12 || new.len() > 1024 {
        let Page(r) = password_form(
            &c,
            &s,
            false,
            Some("the new password must be 12 to 1024 characters".into()),
        );
        return Page(r.map(|r| (StatusCode::BAD_REQUEST, r).into_response()));
    }
    let Some(hash) = auth::hash_password(new).await else {
        return Page(Err(ConsoleError::Internal("password hashing")));
    };
    let Some(keep) = session_hash(&headers) else {
        return Page(Err(ConsoleError::Internal("session cookie")));
    };
    tryp!(c.store.set_password(&s.user_id, &hash, keep).await);
    tracing::info!(user = %s.user_id, "console password changed");
    password_form(&c, &s, true, None)
}

async fn create_token(
    State(c): St,
    headers: HeaderMap,
    Path(account_id): Path<String>,
    Form(form): Fields,
) -> Page {
    let s = page!(require_post(&c, &headers, &form).await);
    let a = tryp!(member(&c, &s, &account_id).await);
    let name = field(&form, "name");
    if name.is_empty() || name.len() > 100 {
        return Page(Err(ConsoleError::BadRequest(
            "name the token (up to 100 characters)".into(),
        )));
    }
    let Some((token, parts)) = auth::new_api_token() else {
        return Page(Err(ConsoleError::Internal("no randomness")));
    };
    let Some(id) = auth::random_token::<16>() else {
        return Page(Err(ConsoleError::Internal("no randomness")));
    };
    tryp!(
        c.store
            .put_api_token(&id, &a.account_id, &parts.prefix, parts.hash, name, c.now())
            .await
    );
    // The token is in this answer only; it is not stored.
    account_page(&c, &s, &a, Some(token), None).await.into()
}

async fn revoke_token(
    State(c): St,
    headers: HeaderMap,
    Path((account_id, token_id)): Path<(String, String)>,
    Form(form): Fields,
) -> Page {
    let s = page!(require_post(&c, &headers, &form).await);
    let a = tryp!(member(&c, &s, &account_id).await);
    if !tryp!(
        c.store
            .revoke_api_token(&a.account_id, &token_id, c.now())
            .await
    ) {
        return Page(Err(ConsoleError::NotFound));
    }
    Page(Ok(see_other(&format!("/accounts/{account_id}"))))
}

async fn add_helper(
    State(c): St,
    headers: HeaderMap,
    Path(account_id): Path<String>,
    Form(form): Fields,
) -> Page {
    let s = page!(require_post(&c, &headers, &form).await);
    let a = tryp!(member(&c, &s, &account_id).await);
    tryp!(
        pair_helper(
            &c,
            &a.account_id,
            field(&form, "name"),
            field(&form, "dap_url"),
            field(&form, "control_token"),
        )
        .await
    );
    Page(Ok(see_other(&format!("/accounts/{account_id}"))))
}

/// Stores a helper for the account, its control token sealed with the datastore key.
pub(crate) async fn pair_helper(
    c: &Console,
    account_id: &str,
    name: &str,
    dap_url: &str,
    token: &str,
) -> Result<String, ConsoleError> {
    if name.is_empty() || name.len() > 100 {
        return Err(ConsoleError::BadRequest(
            "name the helper (up to 100 characters)".into(),
        ));
    }
    if dap_url.len() > 2000 {
        return Err(ConsoleError::BadRequest(
            "the helper's URL is too long".into(),
        ));
    }
    crate::egress::check_url(dap_url, c.config.helper_policy())
        .map_err(|e| ConsoleError::BadRequest(e.0))?;
    if token.is_empty() || token.len() > 1000 {
        return Err(ConsoleError::BadRequest(
            "give the helper's control-plane token".into(),
        ));
    }
    let url = if dap_url.ends_with('/') {
        dap_url.to_owned()
    } else {
        format!("{dap_url}/")
    };
    let id = auth::random_token::<16>().ok_or(ConsoleError::Internal("no randomness"))?;
    let sealed = c.datastore.seal_secret(
        "console_helpers",
        "control_token",
        id.as_bytes(),
        token.as_bytes(),
    )?;
    c.store
        .put_helper(&id, account_id, name, &url, sealed, c.now())
        .await?;
    Ok(id)
}

async fn credential_page(State(c): St, headers: HeaderMap, Path(account_id): Path<String>) -> Page {
    let s = page!(require_session(&c, &headers).await);
    let a = tryp!(member(&c, &s, &account_id).await);
    render(&c, "credential_new.html", base(Some(&s), Some(&a))).into()
}

/// Checks an encoded collector `HpkeConfig` (unpadded base64url) the console can use.
pub(crate) fn check_hpke_config(text: &str) -> Result<String, ConsoleError> {
    use cairn_dap_messages::Decode;
    let bad =
        || ConsoleError::BadRequest("not an X25519/HKDF-SHA256/AES-128-GCM HPKE config".into());
    let bytes = URL_SAFE_NO_PAD.decode(text.trim()).map_err(|_| bad())?;
    let config = HpkeConfig::get_decoded(&bytes).map_err(|_| bad())?;
    if !cairn_dap_core::hpke::is_supported(&config) || config.public_key.len() != 32 {
        return Err(bad());
    }
    Ok(text.trim().to_owned())
}

fn credential_name(form: &HashMap<String, String>) -> Result<String, ConsoleError> {
    let name = field(form, "name");
    if name.is_empty() || name.len() > 100 {
        return Err(ConsoleError::BadRequest(
            "name the credential (up to 100 characters)".into(),
        ));
    }
    Ok(name.to_owned())
}

async fn add_credential(
    State(c): St,
    headers: HeaderMap,
    Path(account_id): Path<String>,
    Form(form): Fields,
) -> Page {
    let s = page!(require_post(&c, &headers, &form).await);
    let a = tryp!(member(&c, &s, &account_id).await);
    let name = tryp!(credential_name(&form));
    let config = tryp!(check_hpke_config(field(&form, "hpke_config")));
    let Some(id) = auth::random_token::<16>() else {
        return Page(Err(ConsoleError::Internal("no randomness")));
    };
    tryp!(
        c.store
            .put_credential(&id, &a.account_id, &name, &config, "browser", c.now())
            .await
    );
    Page(Ok(see_other(&format!("/accounts/{account_id}"))))
}

/// The server makes the key pair, stores the public half and answers with both as a file to
/// save: the private key exists only in this one answer.
async fn generate_credential(
    State(c): St,
    headers: HeaderMap,
    Path(account_id): Path<String>,
    Form(form): Fields,
) -> Page {
    let s = page!(require_post(&c, &headers, &form).await);
    let a = tryp!(member(&c, &s, &account_id).await);
    let name = tryp!(credential_name(&form));
    let kp = cairn_dap_core::HpkeKeypair::generate(HpkeConfigId(1));
    let Ok(encoded) = kp.config().get_encoded() else {
        return Page(Err(ConsoleError::Internal("HPKE config encoding")));
    };
    let config = URL_SAFE_NO_PAD.encode(encoded);
    let Some(id) = auth::random_token::<16>() else {
        return Page(Err(ConsoleError::Internal("no randomness")));
    };
    tryp!(
        c.store
            .put_credential(&id, &a.account_id, &name, &config, "server", c.now())
            .await
    );
    let file = serde_json::json!({
        "config": config,
        "private_key": URL_SAFE_NO_PAD.encode(kp.private_key()),
    });
    let mut resp = format!("{file:#}\n").into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"collector-key.json\""),
    );
    Page(Ok(resp))
}

const KINDS: [(&str, &str); 5] = [
    ("count", "A count — how many people did something"),
    (
        "sum",
        "A sum — add up a number from each person, up to a maximum",
    ),
    ("histogram", "A histogram — how many fell in each bucket"),
    (
        "count_vector",
        "A vector of counts — several counts per report",
    ),
    (
        "multi_select",
        "A multi-select — which options people picked",
    ),
];

async fn wizard(
    c: &Console,
    s: &Session,
    a: &Account,
    form: &MetricForm,
    error: Option<String>,
) -> Result<Response, ConsoleError> {
    let ctx = context! {
        form => form,
        kinds => KINDS.to_vec(),
        periods => PERIODS.to_vec(),
        floor => c.config.min_batch_size_floor,
        helpers => c.store.get_helpers(&a.account_id).await?,
        shared_helper => c.shared_helper.is_some(),
        credentials => c.store.get_credentials(&a.account_id).await?,
        error,
    };
    render(c, "task_new.html", with(base(Some(s), Some(a)), ctx))
}

async fn new_task_page(State(c): St, headers: HeaderMap, Path(account_id): Path<String>) -> Page {
    let s = page!(require_session(&c, &headers).await);
    let a = tryp!(member(&c, &s, &account_id).await);
    let form = MetricForm {
        time_precision: "3600".into(),
        helper: SHARED_HELPER.into(),
        ..MetricForm::default()
    };
    wizard(&c, &s, &a, &form, None).await.into()
}

async fn create_task(
    State(c): St,
    headers: HeaderMap,
    Path(account_id): Path<String>,
    Form(fields): Fields,
) -> Page {
    let s = page!(require_post(&c, &headers, &fields).await);
    let a = tryp!(member(&c, &s, &account_id).await);
    let form: MetricForm = serde_json::to_value(&fields)
        .and_then(serde_json::from_value)
        .unwrap_or_default();
    match provision::create_task(&c, &a.account_id, &form).await {
        Ok(created) => task_view(
            &c,
            &s,
            &a,
            &created.task,
            Some(created.collector_auth_token),
        )
        .await
        .map(|r| (StatusCode::CREATED, r).into_response())
        .into(),
        Err(e @ (ConsoleError::BadRequest(_) | ConsoleError::Aggregator(_))) => {
            let status = e.status();
            wizard(&c, &s, &a, &form, Some(e.to_string()))
                .await
                .map(|r| (status, r).into_response())
                .into()
        }
        Err(e) => Page(Err(e)),
    }
}

fn kind_words(metric: &Metric) -> String {
    match &metric.kind {
        MetricKind::Count => "a count".into(),
        MetricKind::Sum { max } => format!("a sum of values up to {max}"),
        MetricKind::Histogram { labels, .. } => format!("a histogram of {} buckets", labels.len()),
        MetricKind::CountVector { length, max } => {
            format!("a vector of {length} counts (up to {max} each per report)")
        }
        MetricKind::MultiSelect {
            options,
            max_selected,
        } => {
            format!(
                "a multi-select of {} options (up to {max_selected} per report)",
                options.len()
            )
        }
    }
}

async fn task_view(
    c: &Console,
    s: &Session,
    a: &Account,
    task: &crate::store::TaskRow,
    collector_token: Option<String>,
) -> Result<Response, ConsoleError> {
    let (metric, params) = provision::parse_task(task)?;
    let status = provision::task_status(c, task, &params).await?;
    let results = c
        .store
        .get_results(&a.account_id, &task.task_id, crate::api::RESULTS_KEPT)
        .await?;
    let chart = crate::chart::svg(&metric, &results).map(Value::from_safe_string);
    let result_rows: Vec<_> = results
        .iter()
        .rev()
        .map(|r| {
            let values = crate::chart::coordinates(&r.aggregate_result)
                .unwrap_or_default()
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            context! { start => r.interval_start, duration => r.interval_duration,
            report_count => r.report_count, values }
        })
        .collect();
    let console_url =
        c.config.public_url.clone().unwrap_or_else(|| {
            format!("{}{}", c.leader_public_url(), MOUNT.trim_start_matches('/'))
        });
    let ctx = context! {
        chart,
        console_url,
        legend => crate::chart::legend(&metric),
        results => result_rows,
        task => task,
        kind_words => kind_words(&metric),
        noise => metric.noise_words(),
        labels => metric.labels(),
        example => metric.example_measurement(),
        time_windows => params.batch_mode == cairn_dap_messages::BatchMode::TimeInterval,
        metric => metric,
        status => status,
        collector_token,
    };
    render(c, "task.html", with(base(Some(s), Some(a)), ctx))
}

async fn task_page(
    State(c): St,
    headers: HeaderMap,
    Path((account_id, task_id)): Path<(String, String)>,
) -> Page {
    let s = page!(require_session(&c, &headers).await);
    let a = tryp!(member(&c, &s, &account_id).await);
    let Some(task) = tryp!(c.store.get_task(&a.account_id, &task_id).await) else {
        return Page(Err(ConsoleError::NotFound));
    };
    task_view(&c, &s, &a, &task, None).await.into()
}

async fn task_json(
    State(c): St,
    headers: HeaderMap,
    Path((account_id, task_id)): Path<(String, String)>,
) -> Page {
    let s = page!(require_session(&c, &headers).await);
    let a = tryp!(member(&c, &s, &account_id).await);
    let Some(task) = tryp!(c.store.get_task(&a.account_id, &task_id).await) else {
        return Page(Err(ConsoleError::NotFound));
    };
    let mut resp = format!("{}\n", task.parameters).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Page(Ok(resp))
}

async fn delete_task(
    State(c): St,
    headers: HeaderMap,
    Path((account_id, task_id)): Path<(String, String)>,
    Form(form): Fields,
) -> Page {
    let s = page!(require_post(&c, &headers, &form).await);
    let a = tryp!(member(&c, &s, &account_id).await);
    tryp!(provision::delete_task(&c, &a.account_id, &task_id).await);
    Page(Ok(see_other(&format!("/accounts/{account_id}"))))
}
