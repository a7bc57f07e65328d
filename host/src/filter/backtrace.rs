//! A guest trap's Wasm backtrace in one line: demangled, and trimmed to the filter's own
//! frames (no std/core panic machinery, allocator, serde, SDK glue or component adapter).

use wasmtime::WasmBacktrace;

/// Frames shown at most, innermost first.
const MAX_FRAMES: usize = 6;

/// Crates whose frames are not the filter's own code.
const RUNTIME: &[&str] = &[
    "core::",
    "std::",
    "alloc::",
    "panic_abort::",
    "panic_unwind::",
    "dlmalloc::",
    "wasi::",
    "wit_bindgen",
    "weir_sdk::",
    "serde::",
    "serde_core::",
    "serde_json::",
    "serde_path_to_error::",
];

/// The filter's frames of the trap's backtrace, innermost first, joined by ` <- ` (e.g.
/// `rate_limit::Unit::parse <- rate_limit::init`), or `None` when the trap has no backtrace
/// or none of its frames is named and the filter's own (a build stripped of its name section).
pub(super) fn filter_frames(e: &wasmtime::Error) -> Option<String> {
    let trace = e.downcast_ref::<WasmBacktrace>()?;
    let names = own_frames(trace.frames().iter().filter_map(|f| f.func_name()));
    (!names.is_empty()).then(|| names.join(" <- "))
}

/// The demangled names among `raw` (innermost first) that are the filter's own, consecutive
/// repeats (recursion) folded, at most [`MAX_FRAMES`].
fn own_frames<'a>(raw: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for name in raw {
        let name = format!("{:#}", rustc_demangle::demangle(name));
        if !is_own(&name) || names.last() == Some(&name) {
            continue;
        }
        if names.len() == MAX_FRAMES {
            names.push("...".to_string());
            break;
        }
        names.push(name);
    }
    names
}

/// Whether a demangled function name is the filter's code: a Rust path (`crate::item`, or
/// `<Type as Trait>::item` judged by its type) outside the runtime crates. Exported C names
/// (`cabi_realloc`, `__wasm_call_ctors`, `_start`) and adapter shims have no `::`.
fn is_own(name: &str) -> bool {
    let subject = name
        .strip_prefix('<')
        .map(|inner| {
            inner
                .trim_start_matches(['&', '*'])
                .trim_start_matches("mut ")
        })
        .unwrap_or(name);
    subject.contains("::")
        && !subject.starts_with("__")
        && !RUNTIME.iter().any(|krate| subject.starts_with(krate))
        && !name.contains("_export_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_filters_frames_demangled_innermost_first() {
        // What a panicking `init` looks like, innermost first (legacy mangling, as rustc emits by default).
        let raw = [
            "__rust_start_panic",
            "_ZN3std9panicking20rust_panic_with_hook17h0123456789abcdefE",
            "_ZN4core9panicking9panic_fmt17h0123456789abcdefE",
            "_ZN10rate_limit4Unit5parse17h0123456789abcdefE",
            "_ZN10rate_limit4Unit5parse17h0123456789abcdefE",
            "_ZN56_$LT$rate_limit..Limiter$u20$as$u20$weir_sdk..Filter$GT$4init17h0123456789abcdefE",
            "_ZN8weir_sdk8bindings7exports4weir6filter6filter17_export_init_cabi17h0123456789abcdefE",
            "_ZN10rate_limit8bindings17_export_init_cabi17h0123456789abcdefE",
            "cabi_realloc",
            "wit-component:shim",
        ];
        assert_eq!(
            own_frames(raw.into_iter()),
            [
                "rate_limit::Unit::parse",
                "<rate_limit::Limiter as weir_sdk::Filter>::init"
            ]
        );
    }

    #[test]
    fn runtime_frames_and_unnamed_builds_give_nothing() {
        assert!(
            own_frames(["_ZN4core9panicking9panic_fmt17h0123456789abcdefE"].into_iter()).is_empty()
        );
        assert!(own_frames(std::iter::empty()).is_empty());
        assert!(!is_own(
            "<&mut serde_json::de::Deserializer<R> as serde::Deserializer>::x"
        ));
        assert!(is_own(
            "<&my_filter::Rules as core::iter::IntoIterator>::into_iter"
        ));
    }

    #[test]
    fn deep_recursion_is_cut_after_a_few_frames() {
        let raw: Vec<String> = (0..20).map(|i| format!("f::g{i}")).collect();
        let kept = own_frames(raw.iter().map(String::as_str));
        assert_eq!(kept.len(), MAX_FRAMES + 1);
        assert_eq!(kept.last().map(String::as_str), Some("..."));
    }
}
