//! `AttributeValue` helpers shared by the DynamoDB adapters: building string/number values and
//! key items, reading attributes back, and the store errors of malformed items or requests.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use clanwar_domain::ports::StoreError;
use std::collections::HashMap;

pub(crate) type Item = HashMap<String, AttributeValue>;

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(crate) fn key_item((pk, sk): (String, String)) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

pub(crate) fn epoch(at: DateTime<Utc>) -> AttributeValue {
    n(at.timestamp())
}

pub(crate) fn corrupt(key: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        key: key.to_owned(),
        message: err.to_string(),
    }
}

pub(crate) fn number(item: &Item, name: &str) -> i64 {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|raw| raw.parse().ok())
        .unwrap_or(0)
}

pub(crate) fn string(item: &Item, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

pub(crate) fn invalid(err: impl std::fmt::Display) -> StoreError {
    StoreError::Invalid(err.to_string())
}
