//! Errors of loading filters and of calling them.

/// A filter could not be loaded: the file, the component's world, or its `init`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    /// The plugin file is missing or unreadable.
    #[error("cannot read plugin {path}: {reason}")]
    Read {
        /// The plugin file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The file is not a valid WebAssembly component.
    #[error("plugin {path} is not a valid WebAssembly component: {reason}")]
    Compile {
        /// The plugin file.
        path: String,
        /// The compiler's reason.
        reason: String,
    },
    /// The component does not implement the `weir:filter` world this host provides.
    #[error("plugin {path} is not a compatible Weir filter: {reason}")]
    World {
        /// The plugin file.
        path: String,
        /// What is missing or mismatched.
        reason: String,
    },
    /// The filter's `init` refused its configuration.
    #[error("init refused the config: {0}")]
    Init(String),
    /// Every instance the filter may have (`max-instances`) is in use.
    #[error("all {0} of its instances are busy (max-instances)")]
    AtCapacity(u32),
    /// The filter trapped while being instantiated or initialised.
    #[error("trapped during init: {0}")]
    Trap(String),
    /// Its `instance-start = "snapshot"` could not be made (the step and why).
    #[error("cannot snapshot it after init: {0}")]
    Snapshot(String),
    /// Its outbound HTTP clients could not be set up (an unreadable `outbound-ca`).
    #[error("outbound HTTP: {0}")]
    Outbound(String),
    /// A directory granted in its `files` cannot be opened.
    #[error("cannot grant files: {0}")]
    Files(String),
    /// Its shared store's settings cannot be used.
    #[error("shared store: {0}")]
    Store(String),
    /// The Wasm engine could not be set up.
    #[error("cannot create the Wasm engine: {0}")]
    Engine(String),
}

/// A hook call failed; the filter's failure policy decides the request's fate, and the
/// instance is discarded.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The guest trapped (panic, unreachable, out-of-bounds access...) or a host call failed.
    #[error("trapped in {hook}: {reason}")]
    Trap {
        /// `on-request` or `on-response`.
        hook: &'static str,
        /// The trap, in one line.
        reason: String,
        /// The budget it ran out of, if that was the cause.
        budget: Option<super::BudgetHit>,
    },
    /// A fresh instance could not be created.
    #[error("cannot create an instance: {0}")]
    Instantiate(String),
    /// The filter's shared store could not answer and its `on-store-failure` is
    /// `fail-closed`: the request is answered 503 whatever the filter's `on-failure`.
    #[error("{0}")]
    StoreUnavailable(String),
    /// The filter returned a local response the host cannot send.
    #[error("returned an invalid response: {0}")]
    InvalidResponse(String),
}

/// A failed guest call in one line: the panic's message and location when the guest
/// panicked (what happened and where), else the trap (`call stack exhausted`...), else the
/// host error at the root — then the filter's own frames of the Wasm backtrace, demangled
/// (`panicked at src/lib.rs:62:48: bad unit (in rate_limit::Unit::parse <- rate_limit::init)`),
/// never wasmtime's multi-line backtrace.
pub(super) fn trap_reason(e: &wasmtime::Error, panic: Option<String>) -> String {
    let what = match (panic, e.downcast_ref::<wasmtime::Trap>()) {
        (Some(panic), _) => panic,
        (None, Some(trap)) => trap.to_string(),
        (None, None) => e.root_cause().to_string(),
    };
    match super::backtrace::filter_frames(e) {
        Some(frames) => format!("{what} (in {frames})"),
        None => what,
    }
}
