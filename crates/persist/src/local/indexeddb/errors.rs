//! Mapping IndexedDB's DOM exceptions to [`StoreError`]s, which decide whether the engine retries
//! a write (transient), reports a full quota, or parks a bad value.

use indexed_db_futures::error::{Error as IdbError, OpenDbError};
use wasm_bindgen::{JsCast, JsValue};

use crate::local::StoreError;

/// Classifies an IndexedDB error by its DOM exception name.
pub(super) fn store_error(error: IdbError) -> StoreError {
    match error {
        IdbError::DomException(exception) => {
            let sys: web_sys::DomException = exception.into();
            from_dom_exception(&sys)
        }
        IdbError::Serialisation(error) => StoreError::InvalidData(error.to_string()),
        IdbError::MissingData(error) => StoreError::InvalidData(error.to_string()),
        IdbError::Unknown(error) => {
            let value: JsValue = error.into();
            match value.dyn_into::<web_sys::DomException>() {
                Ok(exception) => from_dom_exception(&exception),
                Err(value) => {
                    StoreError::Other { name: "Error".into(), message: js_error_message(&value) }
                }
            }
        }
    }
}

/// Classifies a failed open: anything but a version conflict means IndexedDB is unusable here.
pub(super) fn open_error(error: OpenDbError) -> StoreError {
    match error {
        OpenDbError::Base(error) => match store_error(error) {
            StoreError::Other { name, message } if name != "VersionError" => {
                StoreError::Unavailable(format!("cannot open database: {name}: {message}"))
            }
            other => other,
        },
        other => StoreError::Unavailable(format!("cannot open database: {other}")),
    }
}

/// `true` for the error of opening at a version lower than the database's.
pub(super) fn is_version_error(error: &StoreError) -> bool {
    matches!(error, StoreError::Other { name, .. } if name == "VersionError")
}

/// Classifies a DOM exception raised by IndexedDB: `QuotaExceededError` → quota,
/// `DataError`/`DataCloneError` → invalid data, `InvalidStateError`/`NotFoundError` (closed or
/// deleted database) → unavailable, anything else (`AbortError`, `UnknownError`, ...) → other,
/// retried.
pub(super) fn from_dom_exception(exception: &web_sys::DomException) -> StoreError {
    let (name, message) = (exception.name(), exception.message());
    match name.as_str() {
        "QuotaExceededError" => StoreError::QuotaExceeded(message),
        "DataError" | "DataCloneError" => StoreError::InvalidData(format!("{name}: {message}")),
        "InvalidStateError" | "NotFoundError" => {
            StoreError::Unavailable(format!("{name}: {message}"))
        }
        _ => StoreError::Other { name, message },
    }
}

/// The message of a thrown JavaScript value.
pub(super) fn js_error_message(value: &JsValue) -> String {
    value
        .dyn_ref::<js_sys::Error>()
        .map(|error| String::from(error.message()))
        .or_else(|| value.as_string())
        .unwrap_or_else(|| format!("{value:?}"))
}

#[cfg(all(test, target_arch = "wasm32"))]
mod tests {
    use wasm_bindgen_test::*;

    use super::*;
    use crate::local::WriteErrorKind;

    wasm_bindgen_test_configure!(run_in_browser);

    #[wasm_bindgen_test]
    fn dom_errors_are_classified() {
        let exception =
            |name: &str| web_sys::DomException::new_with_message_and_name("message", name).unwrap();
        assert!(matches!(
            from_dom_exception(&exception("QuotaExceededError")),
            StoreError::QuotaExceeded(_)
        ));
        assert!(matches!(
            from_dom_exception(&exception("DataCloneError")),
            StoreError::InvalidData(_)
        ));
        assert!(matches!(
            from_dom_exception(&exception("InvalidStateError")),
            StoreError::Unavailable(_)
        ));
        let other = from_dom_exception(&exception("AbortError"));
        assert_eq!(
            other,
            StoreError::Other { name: "AbortError".into(), message: "message".into() }
        );
        assert_eq!(
            StoreError::QuotaExceeded("full".into()).write_error_kind(),
            WriteErrorKind::QuotaExceeded
        );
    }
}
