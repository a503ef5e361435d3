//! docs/api.md, the API reference in the repository, against the OpenAPI document the server
//! serves: the same endpoints, and for each the same error statuses and codes.
//!
//! docs/api.md names an endpoint in a heading ``### `METHOD /path` `` and its errors, in that
//! section, as `` `409 SEAT_UNAVAILABLE` ``; its table under "Conventions" lists every code.
//! In the OpenAPI document an operation's error responses name their codes in their
//! descriptions, and the `Problem` schema lists every code.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use support::TestApp;

type Endpoint = (String, String);
type Errors = BTreeSet<(u16, String)>;

const API_MD: &str = include_str!("../../../../docs/api.md");
const README: &str = include_str!("../../../../README.md");

/// The upper-case words of `text` (codes such as `SEAT_UNAVAILABLE`).
fn shouted_words(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_uppercase() || c == '_'))
        .filter(|word| word.len() > 2 && word.chars().any(|c| c.is_ascii_uppercase()))
        .map(str::to_string)
        .collect()
}

/// The spans between backticks on `line`.
fn quoted(line: &str) -> impl Iterator<Item = &str> {
    line.split('`').skip(1).step_by(2)
}

/// `409 SEAT_UNAVAILABLE` as an error of an endpoint.
fn error_pair(span: &str) -> Option<(u16, String)> {
    let (status, code) = span.split_once(' ')?;
    let status: u16 = status.parse().ok()?;
    let is_code = !code.is_empty() && code.chars().all(|c| c.is_ascii_uppercase() || c == '_');
    (status >= 400 && is_code).then(|| (status, code.to_string()))
}

/// docs/api.md: each endpoint with its errors.
fn documented_endpoints() -> BTreeMap<Endpoint, Errors> {
    let mut endpoints = BTreeMap::new();
    let mut current: Option<Endpoint> = None;
    for line in API_MD.lines() {
        if line.starts_with('#') {
            current = line
                .strip_prefix("### `")
                .and_then(|rest| rest.strip_suffix('`'))
                .and_then(|heading| heading.split_once(' '))
                .map(|(method, path)| (method.to_string(), path.to_string()));
            if let Some(endpoint) = &current {
                let fresh = endpoints.insert(endpoint.clone(), Errors::new()).is_none();
                assert!(fresh, "docs/api.md describes {endpoint:?} twice");
            }
            continue;
        }
        if let Some(endpoint) = &current {
            let errors = endpoints.get_mut(endpoint).expect("the current endpoint");
            errors.extend(quoted(line).filter_map(error_pair));
        }
    }
    endpoints
}

/// docs/api.md: the codes of the table of errors.
fn documented_codes() -> BTreeSet<String> {
    API_MD
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            // | status | `CODE` | when |
            let status = cells.get(1)?.parse::<u16>().ok()?;
            let code = cells.get(2)?.strip_prefix('`')?.strip_suffix('`')?;
            (status >= 400).then(|| code.to_string())
        })
        .collect()
}

/// The OpenAPI document: every code its `Problem` schema lists.
fn openapi_codes(document: &Value) -> BTreeSet<String> {
    let description = document["components"]["schemas"]["Problem"]["properties"]["code"]
        ["description"]
        .as_str()
        .expect("Problem.code has a description listing the codes");
    let (_, list) = description
        .split_once(':')
        .expect("the description lists the codes after a colon");
    shouted_words(list)
}

/// The OpenAPI document: each operation with the codes its error responses name.
fn openapi_endpoints(document: &Value, codes: &BTreeSet<String>) -> BTreeMap<Endpoint, Errors> {
    let mut endpoints = BTreeMap::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            if !["get", "put", "post", "delete", "patch", "head", "options"]
                .contains(&method.as_str())
            {
                continue;
            }
            let mut errors = Errors::new();
            if let Some(responses) = operation["responses"].as_object() {
                for (status, response) in responses {
                    let status: u16 = status.parse().expect("a numeric status");
                    if status < 400 {
                        continue;
                    }
                    let description = response["description"].as_str().unwrap_or_default();
                    let named: Vec<String> = shouted_words(description)
                        .into_iter()
                        .filter(|word| codes.contains(word))
                        .collect();
                    assert!(
                        !named.is_empty(),
                        "OpenAPI: {} {path} answers {status} without naming its code: {description:?}",
                        method.to_uppercase()
                    );
                    errors.extend(named.into_iter().map(|code| (status, code)));
                }
            }
            endpoints.insert((method.to_uppercase(), path.clone()), errors);
        }
    }
    endpoints
}

fn missing<T: Ord + Clone>(from: &BTreeSet<T>, in_other: &BTreeSet<T>) -> Vec<T> {
    from.difference(in_other).cloned().collect()
}

#[tokio::test]
async fn docs_api_md_and_the_openapi_document_name_the_same_endpoints_and_errors() {
    let app = TestApp::spawn().await;
    let response = app.get("/api/openapi.json").await;
    assert_eq!(response.status(), 200);
    let document: Value = response.json().await.unwrap();

    let codes = openapi_codes(&document);
    let served = openapi_endpoints(&document, &codes);
    let documented = documented_endpoints();

    let served_keys: BTreeSet<Endpoint> = served.keys().cloned().collect();
    let documented_keys: BTreeSet<Endpoint> = documented.keys().cloned().collect();
    assert_eq!(
        (
            missing(&served_keys, &documented_keys),
            missing(&documented_keys, &served_keys)
        ),
        (vec![], vec![]),
        "(endpoints in OpenAPI but not in docs/api.md, endpoints in docs/api.md but not in OpenAPI)"
    );
    for (endpoint, errors) in &served {
        let written = &documented[endpoint];
        assert_eq!(
            (missing(errors, written), missing(written, errors)),
            (vec![], vec![]),
            "{} {}: (errors in OpenAPI but not in docs/api.md, errors in docs/api.md but not in OpenAPI)",
            endpoint.0,
            endpoint.1
        );
    }
}

#[tokio::test]
async fn docs_api_md_lists_every_error_code_of_the_openapi_document_and_no_other() {
    let app = TestApp::spawn().await;
    let document: Value = app.get("/api/openapi.json").await.json().await.unwrap();

    let codes = openapi_codes(&document);
    let table = documented_codes();

    assert!(codes.contains("SEAT_UNAVAILABLE"), "{codes:?}");
    assert_eq!(
        (missing(&codes, &table), missing(&table, &codes)),
        (vec![], vec![]),
        "(codes in OpenAPI but not in the table of docs/api.md, codes in the table but not in OpenAPI)"
    );
    let used: BTreeSet<String> = documented_endpoints()
        .into_values()
        .flatten()
        .map(|(_, code)| code)
        .collect();
    assert_eq!(
        missing(&used, &table),
        Vec::<String>::new(),
        "codes given to endpoints in docs/api.md but missing from its table"
    );
}

#[test]
fn the_readme_points_at_docs_api_md() {
    assert!(README.contains("docs/api.md"));
    assert!(
        !README.contains("shared/API.md"),
        "the README points outside the repository"
    );
}
