//! CodeForge's key-value storage API at `/api/storage/*`, mapped onto the same records as the
//! sync protocol (`"<collection>:<id>"` keys), with CodeForge's requests, bodies and messages, so
//! its old clients keep working.
//!
//! Route names vs keys: a path spelled literally `keys`, `export`, `stats` (GET), `import` or
//! `clear` (POST) is that operation, as in CodeForge. Every other path is a key: percent-decoded,
//! so it may contain `/` (raw or `%2F`), `:`, spaces, unicode. A key spelled like a route name is
//! reached by percent-encoding any of its characters (`%73tats`) or through the alias
//! `/api/storage/item/<key>`, which is always a key (so `item/…` keys need the alias too).

use axum::body::Bytes;
use axum::extract::{FromRequest, OriginalUri, Request, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::Json;
use persist_protocol::{flat_key, split_flat_key, validate_item_key, ErrorCode};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::export::ExportFormat;
use super::extract::CodeForgeUser;
use super::json::{parse, BodyBytes};
use super::sync::{off_the_workers, unexpected, upsert_row, write_upserts};
use super::AppState;
use crate::error::ApiError;
use crate::storage::{Applied, Mutation, StoredRecord};

const KEY_NOT_FOUND: &str = "Key not found";
const ITEM_PREFIX: &str = "item/";

/// What a CodeForge request asks for.
#[derive(Debug, PartialEq, Eq)]
enum CodeForgeRoute {
    Keys,
    Export,
    Import,
    Stats,
    Clear,
    Get(String),
    Put(String),
    Delete(String),
}

/// `/api/storage` itself: no key.
pub(super) async fn root() -> ApiError {
    ApiError::not_found(KEY_NOT_FOUND)
}

/// Every `/api/storage/<rest>` request.
///
/// `CodeForgeUser` is taken as is, not as a `Result`: its rejection (401, or 403 for a refused
/// anonymous request) then ends the request before axum runs `BodyBytes`, so no byte of an
/// unauthenticated upload (up to `--max-import-bytes` for imports) is read or buffered.
pub(super) async fn dispatch(
    State(state): State<AppState>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    CodeForgeUser(user): CodeForgeUser,
    BodyBytes(body): BodyBytes,
) -> Result<Response, ApiError> {
    let raw = uri.path().strip_prefix("/api/storage/").unwrap_or_default();
    let route = resolve(&method, raw)?;
    let limits = &state.config.limits;
    let read_body = || -> Result<Value, ApiError> {
        let bytes = body.clone()?;
        if !matches!(route, CodeForgeRoute::Import) && bytes.len() > limits.max_body_bytes {
            return Err(ApiError::too_large("request body is larger than the server's limit"));
        }
        parse(&bytes)
    };
    let storage = &state.storage;
    let response = match &route {
        CodeForgeRoute::Keys => {
            let mut keys: Vec<String> =
                storage.keys(&user).await?.iter().map(|(c, i)| flat_key(c, i)).collect();
            keys.sort();
            Json(json!({ "keys": keys })).into_response()
        }
        CodeForgeRoute::Export => {
            let slot = state.export_slots.acquire(&user)?;
            let export = storage.export(&user).await?;
            super::export::response(
                ExportFormat::CodeForge,
                export,
                slot,
                super::sync::export_deadline(&state),
            )
        }
        CodeForgeRoute::Import => import_body(&state, &user, body?).await?,
        CodeForgeRoute::Stats => Json(storage.stats(&user).await?).into_response(),
        CodeForgeRoute::Clear => {
            let written = storage.write(&user, Mutation::Clear).await?;
            match written.applied {
                Applied::Clear(count) => tracing::debug!(user, count, "namespace cleared"),
                other => return Err(unexpected(other)),
            }
            success()
        }
        CodeForgeRoute::Get(key) => {
            let (collection, id) = split_flat_key(key);
            match storage.get(&user, collection, id).await? {
                Some(StoredRecord { value: Some(value), deleted: false, .. }) => {
                    Json(ValueAnswer { value }).into_response()
                }
                _ => return Err(ApiError::not_found(KEY_NOT_FOUND)),
            }
        }
        CodeForgeRoute::Put(key) => {
            let (collection, id) = split_flat_key(key);
            let value = match read_body()? {
                Value::Object(mut fields) => fields.remove("value"),
                _ => None,
            };
            let value = value
                .ok_or_else(|| ApiError::new(ErrorCode::MissingField, "Missing value field"))?;
            let value = RawValue::from_string(value.to_string())
                .map_err(|e| ApiError::invalid(format!("value: {e}")))?;
            let row =
                upsert_row(collection.to_owned(), id.to_owned(), &value, limits.max_value_bytes)?;
            let written = storage.write(&user, Mutation::Upsert(vec![row])).await?;
            if !matches!(written.applied, Applied::Upsert(_)) {
                return Err(unexpected(written.applied));
            }
            success()
        }
        CodeForgeRoute::Delete(key) => {
            let (collection, id) = split_flat_key(key);
            let mutation = Mutation::Delete { collection: collection.into(), id: id.into() };
            match storage.write(&user, mutation).await?.applied {
                Applied::Delete(true) => success(),
                Applied::Delete(false) => return Err(ApiError::not_found(KEY_NOT_FOUND)),
                other => return Err(unexpected(other)),
            }
        }
    };
    Ok(response)
}

/// `POST /api/storage/import`: its place (`--max-imports-per-user`, `--max-imports`) is taken
/// before its body is read (the other methods on this path are the key `import`: [`dispatch`]).
pub(super) async fn import(
    State(state): State<AppState>,
    CodeForgeUser(user): CodeForgeUser,
    request: Request,
) -> Result<Response, ApiError> {
    let _slot = state.import_slots.acquire(&user)?;
    let body = BodyBytes::from_request(request, &state).await?.0?;
    import_body(&state, &user, body).await
}

/// Upserts a CodeForge import body: an object of `"<collection>:<id>"` keys to values, the values
/// kept as the JSON text they arrived as.
async fn import_body(state: &AppState, user: &str, body: Bytes) -> Result<Response, ApiError> {
    let max_value = state.config.limits.max_value_bytes;
    let rows = off_the_workers(move || {
        let items: FlatItems<'_> = serde_json::from_slice(&body).map_err(|e| {
            if e.classify() == serde_json::error::Category::Data {
                ApiError::malformed("Data must be an object")
            } else {
                ApiError::malformed(format!("malformed JSON: {e}"))
            }
        })?;
        let mut rows = Vec::with_capacity(items.0.len());
        for (key, value) in items.0 {
            let (collection, id) = split_flat_key(&key);
            rows.push(upsert_row(collection.to_owned(), id.to_owned(), value, max_value)?);
        }
        Ok(rows)
    })
    .await?;
    let (imported, _) = write_upserts(state, user, rows).await?;
    Ok(Json(json!({ "success": true, "imported": imported })).into_response())
}

/// A JSON object's entries in document order, values unparsed (duplicate keys are kept: the
/// import's last-wins rule then decides, as it would for `serde_json::Map`).
struct FlatItems<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for FlatItems<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> serde::de::Visitor<'de> for Entries {
            type Value = FlatItems<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of keys to values")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(entry) = map.next_entry::<String, &'de RawValue>()? {
                    entries.push(entry);
                }
                Ok(FlatItems(entries))
            }
        }
        deserializer.deserialize_map(Entries)
    }
}

/// `{"value": …}` with the value as stored.
#[derive(Serialize)]
struct ValueAnswer {
    value: Box<RawValue>,
}

fn success() -> Response {
    Json(json!({ "success": true })).into_response()
}

/// Maps a method and the raw (still percent-encoded) path after `/api/storage/` to a route.
fn resolve(method: &Method, raw: &str) -> Result<CodeForgeRoute, ApiError> {
    let reserved = match (method.as_str(), raw) {
        ("GET" | "HEAD", "keys") => Some(CodeForgeRoute::Keys),
        ("GET" | "HEAD", "export") => Some(CodeForgeRoute::Export),
        ("GET" | "HEAD", "stats") => Some(CodeForgeRoute::Stats),
        ("POST", "import") => Some(CodeForgeRoute::Import),
        ("POST", "clear") => Some(CodeForgeRoute::Clear),
        _ => None,
    };
    if let Some(route) = reserved {
        return Ok(route);
    }
    let encoded = raw.strip_prefix(ITEM_PREFIX).unwrap_or(raw);
    let key = percent_encoding::percent_decode_str(encoded)
        .decode_utf8()
        .map_err(|_| ApiError::invalid("the key is not valid UTF-8"))?
        .into_owned();
    let (collection, id) = split_flat_key(&key);
    if let Err(error) = validate_item_key(collection, id) {
        if *method == Method::GET || *method == Method::DELETE {
            // Nothing can be stored under an invalid key.
            return Err(ApiError::not_found(KEY_NOT_FOUND));
        }
        return Err(ApiError::invalid(format!("invalid key {key:?}: {error}")));
    }
    match *method {
        Method::GET | Method::HEAD => Ok(CodeForgeRoute::Get(key)),
        Method::PUT | Method::POST => Ok(CodeForgeRoute::Put(key)),
        Method::DELETE => Ok(CodeForgeRoute::Delete(key)),
        _ => Err(ApiError::new(ErrorCode::MethodNotAllowed, "method not allowed")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_names_win_only_for_their_method_and_spelling() {
        assert_eq!(resolve(&Method::GET, "stats").unwrap(), CodeForgeRoute::Stats);
        assert_eq!(resolve(&Method::PUT, "stats").unwrap(), CodeForgeRoute::Put("stats".into()));
        assert_eq!(resolve(&Method::GET, "%73tats").unwrap(), CodeForgeRoute::Get("stats".into()));
        assert_eq!(resolve(&Method::GET, "item/keys").unwrap(), CodeForgeRoute::Get("keys".into()));
        assert_eq!(resolve(&Method::POST, "clear").unwrap(), CodeForgeRoute::Clear);
        assert_eq!(resolve(&Method::GET, "clear").unwrap(), CodeForgeRoute::Get("clear".into()));
    }

    #[test]
    fn keys_are_percent_decoded_and_may_hold_slashes() {
        assert_eq!(
            resolve(&Method::GET, "files:src/a%20b.rs").unwrap(),
            CodeForgeRoute::Get("files:src/a b.rs".into())
        );
        assert_eq!(
            resolve(&Method::DELETE, "files:a%2Fb").unwrap(),
            CodeForgeRoute::Delete("files:a/b".into())
        );
        assert_eq!(
            resolve(&Method::PUT, "files:%C3%BC").unwrap(),
            CodeForgeRoute::Put("files:ü".into())
        );
        assert_eq!(resolve(&Method::PUT, "%FF").unwrap_err().code(), ErrorCode::InvalidInput);
        assert_eq!(resolve(&Method::PATCH, "a").unwrap_err().code(), ErrorCode::MethodNotAllowed);
    }
}
