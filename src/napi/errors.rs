//! The one error mapping to JavaScript: a core [`ChordError`] becomes an `Error` whose `code` is
//! the stable `ERR_*` string and whose message carries the numbers.

use napi::bindgen_prelude::*;

use crate::error::{ChordError, ErrorCode};

/// Builds the JS error for `e` (falls back to a plain napi error if building fails).
pub fn to_js(env: &Env, e: ChordError) -> Error {
    let make = || -> Result<Error> {
        let mut obj = env.create_error(Error::new(Status::GenericFailure, e.message.clone()))?;
        obj.set("code", e.code_str())?;
        Ok(Error::from(obj.to_unknown()))
    };
    make().unwrap_or_else(|err| Error::new(Status::GenericFailure, format!("{}: {} ({err})", e.code_str(), e.message)))
}

/// An invalid-option error.
pub fn invalid_option(message: impl Into<String>) -> ChordError {
    ChordError::new(ErrorCode::InvalidOption, message)
}
