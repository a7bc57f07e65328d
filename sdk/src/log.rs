//! Logging into the proxy's log (or, in native tests, into [`crate::testing::take_logs`]).

/// Severity of a log message.
///
/// ```
/// use weir_sdk::{log, testing, Level};
/// log(Level::Warn, "upstream answered slowly");
/// assert_eq!(testing::take_logs(), [(Level::Warn, "upstream answered slowly".to_string())]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Very detailed.
    Trace,
    /// For debugging.
    Debug,
    /// Normal operation.
    Info,
    /// Something looks wrong.
    Warn,
    /// Something failed.
    Error,
}

/// Write `message` to the proxy's log at `level`, tagged with the filter's name.
///
/// ```
/// use weir_sdk::{log, testing, Level};
/// log(Level::Info, "rules loaded");
/// assert_eq!(testing::take_logs().len(), 1);
/// ```
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    {
        use crate::bindings::weir::filter::types::LogLevel;
        let level = match level {
            Level::Trace => LogLevel::Trace,
            Level::Debug => LogLevel::Debug,
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        };
        crate::bindings::weir::filter::host::log(level, message);
    }
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::record_log(level, message);
}

/// Log at info level with `format!` arguments.
///
/// ```
/// use weir_sdk::{testing, Level};
/// weir_sdk::info!("{} rules loaded", 12);
/// assert_eq!(testing::take_logs(), [(Level::Info, "12 rules loaded".to_string())]);
/// ```
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log($crate::Level::Info, &::std::format!($($arg)*)) };
}

/// Log at warn level with `format!` arguments.
///
/// ```
/// use weir_sdk::{testing, Level};
/// weir_sdk::warn!("key {} is close to its limit", "ada");
/// assert_eq!(testing::take_logs()[0].0, Level::Warn);
/// ```
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log($crate::Level::Warn, &::std::format!($($arg)*)) };
}

/// Log at error level with `format!` arguments.
///
/// ```
/// use weir_sdk::{testing, Level};
/// weir_sdk::error!("JWKS refresh failed: {}", "timeout");
/// assert_eq!(testing::take_logs()[0], (Level::Error, "JWKS refresh failed: timeout".to_string()));
/// ```
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log($crate::Level::Error, &::std::format!($($arg)*)) };
}

/// Log at debug level with `format!` arguments.
///
/// ```
/// use weir_sdk::{testing, Level};
/// weir_sdk::debug!("matched rule {}", 942100);
/// assert_eq!(testing::take_logs()[0].0, Level::Debug);
/// ```
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log($crate::Level::Debug, &::std::format!($($arg)*)) };
}
