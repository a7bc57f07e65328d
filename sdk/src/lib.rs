//! # weir-sdk
//!
//! Write [Weir](https://github.com/weir-proxy/weir) proxy filters in Rust.
//!
//! A filter is a type implementing [`Filter`], exported with [`export_filter!`], built to a
//! `wasm32-wasip2` component and named in the proxy's manifest. The same code runs natively
//! in `cargo test` through [`testing`], with no proxy and no Wasm.
//!
//! ```
//! use weir_sdk::{Action, Config, Filter, Request};
//!
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Settings { header: String }
//!
//! pub struct RequireHeader { header: String }
//!
//! impl Filter for RequireHeader {
//!     fn init(config: Config) -> Result<Self, String> {
//!         let s: Settings = config.parse()?;
//!         Ok(RequireHeader { header: s.header })
//!     }
//!     fn on_request(&self, req: &mut Request) -> Action {
//!         match req.header(&self.header) {
//!             Some(_) => Action::Continue,
//!             None => Action::respond_text(400, "missing header\n"),
//!         }
//!     }
//! }
//!
//! weir_sdk::export_filter!(RequireHeader);
//! ```

#![warn(missing_docs)]

// The generated bindings name this crate by its public path, so it works from filter crates too.
extern crate self as weir_sdk;

mod action;
#[allow(missing_docs)]
pub mod bindings;
pub mod cache;
pub mod clock;
mod config;
mod error;
pub mod geo;
pub mod header;
mod http;
pub mod http_client;
pub mod kv;
mod log;
pub mod metrics;
pub mod random;
pub mod rate_limit;
pub mod testing;
pub mod units;

pub use action::{Action, Hooks, LocalResponse};
pub use config::Config;
pub use error::Error;
pub use http::{HeaderEdit, Request, Response};
pub use log::{log, Level};

/// A proxy filter. One value is created per filter instance by [`Filter::init`]; the hooks
/// take `&self` and may be called for many requests, one at a time.
///
/// ```
/// use weir_sdk::{Action, Config, Filter, Hooks, Request};
///
/// /// Answers `GET /healthz` itself; everything else goes upstream.
/// struct Health;
/// impl Filter for Health {
///     fn init(_config: Config) -> Result<Self, String> { Ok(Health) }
///     fn hooks(&self) -> Hooks { Hooks::REQUEST } // no response hook: it costs nothing
///     fn on_request(&self, req: &mut Request) -> Action {
///         if req.method() == "GET" && req.path() == "/healthz" {
///             return Action::respond_text(200, "ok\n");
///         }
///         Action::Continue
///     }
/// }
///
/// use weir_sdk::testing::{self, MockRequest};
/// testing::assert_responds(&testing::on_request(&Health, &mut MockRequest::get("/healthz")), 200);
/// testing::assert_continues(&testing::on_request(&Health, &mut MockRequest::get("/")));
/// ```
pub trait Filter: Sized + 'static {
    /// Build the filter from its manifest configuration; an `Err` refuses the configuration
    /// (reported by `weir check` and at startup, with the filter's name).
    ///
    /// With `instance-start = "snapshot"` in the manifest, `init` runs once, when the filter
    /// loads, and every instance starts from a copy of the memory it left: build data here
    /// (parsed rules, tables), but open files and draw secrets or seeds in the hooks, as
    /// handles do not carry over and a seed drawn here would be the same in every instance.
    fn init(config: Config) -> Result<Self, String>;

    /// Request phase: inspect or change the request, or answer it.
    fn on_request(&self, req: &mut Request<'_>) -> Action {
        let _ = req;
        Action::Continue
    }

    /// Which hooks the proxy should call; the others are skipped at no cost. Called once,
    /// right after [`Filter::init`]. Default: both.
    fn hooks(&self) -> Hooks {
        Hooks::ALL
    }

    /// Response phase: inspect or change the response head, or replace the response.
    /// `req` is the request as it was sent upstream.
    fn on_response(&self, req: &Request<'_>, resp: &mut Response<'_>) -> Action {
        let _ = (req, resp);
        Action::Continue
    }
}

/// Export `$ty` (a [`Filter`]) as the component's `weir:filter/filter` implementation.
///
/// Use it once, at the crate root of a `cdylib` crate. On non-Wasm targets it expands to
/// nothing, so the same crate unit-tests natively.
///
/// ```
/// use weir_sdk::{Config, Filter};
/// pub struct Noop;
/// impl Filter for Noop {
///     fn init(_: Config) -> Result<Self, String> { Ok(Noop) }
/// }
/// // At the crate root of the filter's cdylib crate:
/// weir_sdk::export_filter!(Noop);
/// ```
#[macro_export]
#[rustfmt::skip] // rustfmt does not format this body stably
macro_rules! export_filter {
    ($ty:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __WeirGuest;

            ::std::thread_local! {
                static __WEIR_FILTER: ::std::cell::OnceCell<$ty> =
                    const { ::std::cell::OnceCell::new() };
            }

            impl $crate::__private::Guest for __WeirGuest {
                fn init(
                    config: ::std::string::String,
                ) -> ::std::result::Result<$crate::__private::WitHooks, ::std::string::String>
                {
                    __WEIR_FILTER.with(|cell| $crate::__private::init::<$ty>(cell, config))
                }

                fn on_request(
                    req: $crate::__private::RequestBorrow<'_>,
                ) -> $crate::__private::WitAction {
                    __WEIR_FILTER.with(|cell| $crate::__private::on_request::<$ty>(cell, req))
                }

                fn on_response(
                    req: $crate::__private::RequestBorrow<'_>,
                    resp: $crate::__private::ResponseBorrow<'_>,
                ) -> $crate::__private::WitAction {
                    __WEIR_FILTER
                        .with(|cell| $crate::__private::on_response::<$ty>(cell, req, resp))
                }
            }

            $crate::bindings::__export_filter_world!(__WeirGuest with_types_in $crate::bindings);
        };
    };
}

#[doc(hidden)]
pub mod __private {
    //! Glue used by [`export_filter!`]; not a stable API.
    pub use crate::bindings::exports::weir::filter::filter::Guest;
    pub use crate::bindings::weir::filter::types::Action as WitAction;
    pub use crate::bindings::weir::filter::types::Hooks as WitHooks;
    pub use wit_bindgen;

    use crate::bindings::weir::filter::types as wit;
    use crate::{Action, Config, Filter, Request, Response};
    use std::cell::OnceCell;

    /// How the bindings pass a borrowed request.
    pub type RequestBorrow<'a> = &'a wit::Request;
    /// How the bindings pass a borrowed response.
    pub type ResponseBorrow<'a> = &'a wit::Response;

    pub fn init<F: Filter>(cell: &OnceCell<F>, config: String) -> Result<WitHooks, String> {
        if cell.get().is_some() {
            return Err("init called twice on one instance".into());
        }
        let filter = F::init(Config::from_json(config))?;
        let hooks = filter.hooks();
        let _ = cell.set(filter);
        Ok(WitHooks {
            on_request: hooks.on_request,
            on_response: hooks.on_response,
            request_body: hooks.request_body,
            response_body: hooks.response_body,
        })
    }

    fn get<F>(cell: &OnceCell<F>) -> &F {
        match cell.get() {
            Some(f) => f,
            None => panic!("weir-sdk: hook called before init"),
        }
    }

    pub fn on_request<F: Filter>(cell: &OnceCell<F>, req: RequestBorrow<'_>) -> WitAction {
        to_wit(get(cell).on_request(&mut Request::host(req)))
    }

    pub fn on_response<F: Filter>(
        cell: &OnceCell<F>,
        req: RequestBorrow<'_>,
        resp: ResponseBorrow<'_>,
    ) -> WitAction {
        to_wit(get(cell).on_response(&Request::host(req), &mut Response::host(resp)))
    }

    fn to_wit(action: Action) -> WitAction {
        match action {
            Action::Continue => WitAction::Continue,
            Action::Respond(r) => WitAction::Respond(wit::LocalResponse {
                status: r.status,
                headers: r.headers,
                body: r.body,
            }),
        }
    }
}
