//! What every component's service shares: [`rpc_service!`] makes a service's routes and its
//! client's trait implementation from one list of methods, [`Lend`] hands decoded arguments to
//! the trait in the form its signature takes, and [`WireError`] carries a component's error
//! type across the wire (and turns a transport failure into one).
//!
//! A request is the JSON array of the method's arguments; a response is the method's result,
//! with its error as the error type's [`WireError::Wire`]. The gRPC method is the trait
//! method's name (`/cairn.sa.StorageAuthority/get_order`).

use crate::RpcError;
use cairn_core::Problem;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// An error type that crosses the wire as [`WireError::Wire`].
pub trait WireError: Sized {
    /// How it is encoded.
    type Wire: Serialize + DeserializeOwned + Send + Sync + 'static;
    /// Encodes it (server side).
    fn to_wire(self) -> Self::Wire;
    /// Decodes it (client side).
    fn from_wire(wire: Self::Wire) -> Self;
    /// The error a client reports when `method` could not be called at all.
    fn transport(method: &'static str, error: RpcError) -> Self;
}

/// A [`Problem`] with what its JSON form leaves out (`Retry-After`, the help link), which a
/// client of the RA must still send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireProblem {
    /// The problem document.
    pub problem: Problem,
    /// [`Problem::retry_after`].
    pub retry_after: Option<u32>,
    /// [`Problem::help_url`].
    pub help_url: Option<String>,
}

impl WireError for Problem {
    type Wire = WireProblem;

    fn to_wire(self) -> WireProblem {
        WireProblem {
            retry_after: self.retry_after,
            help_url: self.help_url.as_deref().map(str::to_owned),
            problem: self,
        }
    }

    fn from_wire(wire: WireProblem) -> Self {
        let mut problem = wire.problem;
        problem.retry_after = wire.retry_after;
        problem.help_url = wire.help_url.map(String::into_boxed_str);
        problem
    }

    fn transport(method: &'static str, error: RpcError) -> Self {
        tracing::warn!(method, %error, "registration authority call failed");
        // The client learns only that the CA could not answer; the detail stays in the log.
        Problem::internal()
    }
}

/// Lends a decoded (owned) argument to the trait method in the form its signature takes
/// (`&T`, `&str`, `&[T]`, `Option<&T>`, or a value); the expected type picks the impl.
pub trait Lend<'a, T> {
    /// The argument.
    fn lend(&'a self) -> T;
}

impl<'a, T> Lend<'a, &'a T> for T {
    fn lend(&'a self) -> &'a T {
        self
    }
}

impl<'a> Lend<'a, &'a str> for String {
    fn lend(&'a self) -> &'a str {
        self
    }
}

impl<'a, T> Lend<'a, &'a [T]> for Vec<T> {
    fn lend(&'a self) -> &'a [T] {
        self
    }
}

impl<'a, T> Lend<'a, Option<&'a T>> for Option<T> {
    fn lend(&'a self) -> Option<&'a T> {
        self.as_ref()
    }
}

impl<'a> Lend<'a, Option<&'a str>> for Option<String> {
    fn lend(&'a self) -> Option<&'a str> {
        self.as_deref()
    }
}

/// Arguments a trait method takes by value: lent as a copy (or a clone; the decoded one is
/// dropped right after the call).
macro_rules! lend_by_value {
    ($($t:ty),* $(,)?) => {$(
        impl<'a> $crate::wire::Lend<'a, $t> for $t {
            #[allow(clippy::clone_on_copy)]
            fn lend(&'a self) -> $t {
                self.clone()
            }
        }
    )*};
}
pub(crate) use lend_by_value;

lend_by_value!(
    u32,
    u64,
    bool,
    Option<u8>,
    OffsetDateTime,
    serde_json::Value
);

/// One line per trait method: `fn name(arg: borrowed type => wire type, ...) -> Result<T, E>;`
/// where `E` is a [`WireError`]. Makes `pub fn $routes(Arc<dyn Trait>) -> RpcRouter` and the
/// trait's implementation for `$remote` (a struct with a `client: RpcClient` field; `$extra`
/// holds the trait's other items), so server and client cannot disagree on a method's name
/// or arguments.
macro_rules! rpc_service {
    (
        $(#[$meta:meta])*
        $routes:ident: $service:expr, $trait:path => $remote:ty { $($extra:tt)* }
        $( fn $method:ident ( $( $arg:ident : $borrowed:ty => $owned:ty ),* )
            -> Result<$ok:ty, $err:ty> ; )*
    ) => {
        $(#[$meta])*
        pub fn $routes(component: std::sync::Arc<dyn $trait>) -> $crate::server::RpcRouter {
            #[allow(unused_imports)]
            use $crate::wire::{Lend as _, WireError as _};
            let router = $crate::server::RpcRouter::new($service);
            $(
                let router = {
                    let component = component.clone();
                    router.unary(
                        stringify!($method),
                        move |( $( $arg, )* ): ( $( $owned, )* )| {
                            let component = component.clone();
                            async move {
                                component
                                    .$method($( $arg.lend() ),*)
                                    .await
                                    .map_err(<$err as $crate::wire::WireError>::to_wire)
                            }
                        },
                    )
                };
            )*
            router
        }

        #[async_trait::async_trait]
        impl $trait for $remote {
            $($extra)*

            $(
                async fn $method(&self, $( $arg: $borrowed ),*) -> Result<$ok, $err> {
                    use $crate::wire::WireError;
                    let method = stringify!($method);
                    match self
                        .client
                        .call::<_, Result<$ok, <$err as WireError>::Wire>>(method, ( $( &$arg, )* ))
                        .await
                    {
                        Ok(result) => result.map_err(<$err>::from_wire),
                        Err(e) => Err(<$err>::transport(method, e)),
                    }
                }
            )*
        }
    };
}
pub(crate) use rpc_service;
