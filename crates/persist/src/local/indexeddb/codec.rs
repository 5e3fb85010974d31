//! How an item's JSON text is stored in IndexedDB, and read back: pure Rust, tested natively.
//!
//! Items are stored as plain objects (readable in the browser's dev tools, and what CodeForge's
//! records looked like), except items whose JSON holds numbers a JavaScript number cannot carry
//! exactly (integers past 2^53, more than 15 significant digits): those are stored as
//! `{"__yp_json": "<the JSON text>"}`, so nothing changes on the way through IndexedDB. A value
//! that itself mentions `__yp_json` is wrapped too, so a user value can never be mistaken for a
//! wrapper.
//!
//! The browser side does only `JSON.parse` of [`Encoded::text`] on the way in and
//! `JSON.stringify` of the stored value on the way out, then [`decode`].

/// The object key that marks a record stored as JSON text.
pub(super) const WRAPPER_KEY: &str = "__yp_json";

/// What to hand to `JSON.parse` before storing an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Encoded<'a> {
    /// The item's own JSON: stored as a plain value.
    Plain(&'a str),
    /// The wrapper object holding the item's JSON as a string.
    Wrapped(String),
}

impl Encoded<'_> {
    /// The JSON text to parse into the stored value.
    pub(super) fn text(&self) -> &str {
        match self {
            Encoded::Plain(json) => json,
            Encoded::Wrapped(wrapper) => wrapper,
        }
    }
}

/// How to store `json`: plain when a JavaScript value carries it exactly, wrapped otherwise.
pub(super) fn encode(json: &str) -> Encoded<'_> {
    if numbers_fit_in_f64(json) && !json.contains(WRAPPER_KEY) {
        return Encoded::Plain(json);
    }
    let mut wrapper = serde_json::Map::new();
    wrapper.insert(WRAPPER_KEY.to_owned(), serde_json::Value::String(json.to_owned()));
    Encoded::Wrapped(serde_json::Value::Object(wrapper).to_string())
}

/// The item's JSON from the `JSON.stringify` text of a stored value (unwrapping wrapper records).
pub(super) fn decode(stored: String) -> String {
    // A wrapper stringifies as `{"__yp_json":"..."}` exactly; anything else is the item itself.
    const PREFIX: &str = "{\"__yp_json\":\"";
    if !stored.starts_with(PREFIX) {
        return stored;
    }
    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&stored) {
        Ok(mut object) if object.len() == 1 => match object.remove(WRAPPER_KEY) {
            Some(serde_json::Value::String(json)) => json,
            _ => stored,
        },
        _ => stored,
    }
}

/// `false` when a number literal of `json` has more than 15 significant digits, i.e. may not
/// survive a round trip through a JavaScript number. Conservative and cheap: one pass, no
/// allocation; strings are skipped.
pub(super) fn numbers_fit_in_f64(json: &str) -> bool {
    let (mut in_string, mut escaped) = (false, false);
    // Significant digits of the current number so far; `None` outside a number's mantissa.
    let mut significant: Option<usize> = None;
    let mut in_exponent = false;
    for byte in json.bytes() {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'0'..=b'9' if !in_exponent => {
                let count = significant.get_or_insert(0);
                // Leading zeros (0.000123) are not significant.
                if *count > 0 || byte != b'0' {
                    *count += 1;
                    if *count > 15 {
                        return false;
                    }
                }
            }
            b'0'..=b'9' | b'+' => {}
            b'.' => {}
            b'-' if !in_exponent => significant = None,
            b'-' => {}
            b'e' | b'E' => in_exponent = true,
            other => {
                in_string = other == b'"';
                significant = None;
                in_exponent = false;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the browser does between `encode` and `decode`: `JSON.parse`, store, and
    /// `JSON.stringify` (compact). serde_json's compact form mirrors it for the values used here
    /// (their keys are in sorted order, which serde_json's map keeps and JavaScript would too).
    fn through_the_browser(json: &str) -> String {
        let encoded = encode(json);
        let stored: serde_json::Value = serde_json::from_str(encoded.text()).unwrap();
        decode(stored.to_string())
    }

    #[test]
    fn numbers_past_fifteen_significant_digits_are_flagged() {
        assert!(numbers_fit_in_f64(r#"{"a":1,"b":-2.5e300,"c":"12345678901234567890"}"#));
        assert!(numbers_fit_in_f64("[0.000000000000000000001, 123456789012345]"));
        assert!(numbers_fit_in_f64(r#"{"s":"a \" 12345678901234567"}"#));
        assert!(!numbers_fit_in_f64(r#"{"id":9007199254740993}"#));
        assert!(!numbers_fit_in_f64("[1.0000000000000001]"));
        assert!(!numbers_fit_in_f64("-1234567890123456"));
    }

    #[test]
    fn plain_values_are_stored_as_themselves() {
        let json = r#"{"n":42,"name":"a.rs","nested":{"list":[1,2.5,"x"]}}"#;
        assert_eq!(encode(json), Encoded::Plain(json));
        assert_eq!(through_the_browser(json), json);
    }

    #[test]
    fn huge_numbers_come_back_byte_for_byte() {
        let json = r#"{"id":9007199254740993,"price":0.30000000000000004}"#;
        assert!(matches!(encode(json), Encoded::Wrapped(_)));
        assert_eq!(through_the_browser(json), json);
    }

    #[test]
    fn a_value_that_looks_like_a_wrapper_is_wrapped_itself() {
        let json = r#"{"__yp_json":"not really"}"#;
        assert!(matches!(encode(json), Encoded::Wrapped(_)));
        assert_eq!(through_the_browser(json), json);
        // And an item stored by an older version that happens to look like one is left alone
        // unless it is exactly a wrapper.
        assert_eq!(
            decode(r#"{"__yp_json":"x","other":1}"#.into()),
            r#"{"__yp_json":"x","other":1}"#
        );
        assert_eq!(decode(r#"{"__yp_json":5}"#.into()), r#"{"__yp_json":5}"#);
    }
}
