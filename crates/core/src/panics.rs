//! The text of a panic's payload (a `&str` or a `String`), for the places that turn a caught
//! panic into a message: the CLI's internal-error report, Polars reads, the fuzz tests.

/// The payload's text, or a placeholder when it carries none.
pub fn payload_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}
