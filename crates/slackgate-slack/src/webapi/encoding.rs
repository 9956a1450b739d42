//! [`CallEncoding`]: how a call's body is encoded.

use super::error::CallError;

/// How a call's body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallEncoding {
    /// The body is empty; only the query string carries arguments.
    None,
    /// `application/x-www-form-urlencoded`, or no Content-Type at all.
    Form,
    /// `application/json`.
    Json,
}

impl CallEncoding {
    /// The encoding of `body` by its Content-Type value: parameters such as `charset` are
    /// ignored and the media type's case too. An empty body is [`CallEncoding::None`]
    /// whatever the header says; a non-empty body of any type but a form or JSON
    /// (`multipart/form-data`, `text/plain`, an empty or non-UTF-8 header value) is
    /// [`CallError::UnsupportedEncoding`].
    pub fn detect(content_type: Option<&[u8]>, body: &[u8]) -> Result<Self, CallError> {
        if body.is_empty() {
            return Ok(CallEncoding::None);
        }
        let Some(value) = content_type else {
            return Ok(CallEncoding::Form);
        };
        if simdutf8::basic::from_utf8(value).is_err() {
            return Err(CallError::UnsupportedEncoding);
        }
        let essence = value.split(|&b| b == b';').next().unwrap_or_default();
        let essence = essence.trim_ascii();
        if essence.eq_ignore_ascii_case(b"application/x-www-form-urlencoded") {
            Ok(CallEncoding::Form)
        } else if essence.eq_ignore_ascii_case(b"application/json") {
            Ok(CallEncoding::Json)
        } else {
            Err(CallError::UnsupportedEncoding)
        }
    }
}
