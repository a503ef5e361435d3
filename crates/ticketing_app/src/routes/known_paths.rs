//! Which methods each known path serves, for the 405 of a method it does not: read from the
//! OpenAPI document, which is generated from the handlers, so the two cannot disagree.

use std::sync::OnceLock;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::ResponseError;
use utoipa::openapi::path::PathItem;

use crate::problem::ApiError;

/// A path template's segment: literal text, or a `{parameter}` that takes any one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Parameter,
    /// A trailing `{name:.*}`: any rest of the path, including none.
    Rest,
}

#[derive(Debug, Clone)]
struct KnownPath {
    segments: Vec<Segment>,
    methods: Vec<&'static str>,
}

/// Every path the server answers, with the methods it serves there.
#[derive(Debug, Clone, Default)]
pub(crate) struct KnownPaths {
    paths: Vec<KnownPath>,
}

fn segments_of(template: &str) -> Vec<Segment> {
    template
        .split('/')
        .filter(|part| !part.is_empty())
        .map(|part| match part.strip_prefix('{') {
            Some(name) if name.ends_with(":.*}") => Segment::Rest,
            Some(_) => Segment::Parameter,
            None => Segment::Literal(part.to_string()),
        })
        .collect()
}

fn methods_of(item: &PathItem) -> Vec<&'static str> {
    [
        ("GET", item.get.is_some()),
        ("PUT", item.put.is_some()),
        ("POST", item.post.is_some()),
        ("DELETE", item.delete.is_some()),
        ("OPTIONS", item.options.is_some()),
        ("HEAD", item.head.is_some()),
        ("PATCH", item.patch.is_some()),
        ("TRACE", item.trace.is_some()),
    ]
    .into_iter()
    .filter_map(|(method, served)| served.then_some(method))
    .collect()
}

impl KnownPaths {
    /// The paths of `document`, plus `extra` (path template, methods) it does not describe.
    pub(crate) fn new(
        document: &utoipa::openapi::OpenApi,
        extra: &[(&str, &[&'static str])],
    ) -> Self {
        let mut paths: Vec<KnownPath> = document
            .paths
            .paths
            .iter()
            .map(|(template, item)| KnownPath {
                segments: segments_of(template),
                methods: methods_of(item),
            })
            .collect();
        paths.extend(extra.iter().map(|(template, methods)| KnownPath {
            segments: segments_of(template),
            methods: methods.to_vec(),
        }));
        Self { paths }
    }

    /// The methods served at `path`, joined for an `Allow` header; `None` for an unknown path.
    /// A path two templates match (a literal and a parameter) serves what both serve.
    pub(crate) fn allowed(&self, path: &str) -> Option<String> {
        let asked: Vec<&str> = path.split('/').filter(|part| !part.is_empty()).collect();
        let mut methods: Vec<&'static str> = Vec::new();
        for known in self
            .paths
            .iter()
            .filter(|known| matches(&known.segments, &asked))
        {
            for method in &known.methods {
                if !methods.contains(method) {
                    methods.push(method);
                }
            }
        }
        (!methods.is_empty()).then(|| methods.join(", "))
    }
}

fn matches(template: &[Segment], asked: &[&str]) -> bool {
    match (template.split_first(), asked.split_first()) {
        (Some((Segment::Rest, _)), _) => true,
        (None, None) => true,
        (Some((Segment::Literal(text), rest)), Some((part, others))) => {
            text == part && matches(rest, others)
        }
        (Some((Segment::Parameter, rest)), Some((_, others))) => matches(rest, others),
        _ => false,
    }
}

/// Answers before routing, and before any scope's token check: 404 for a path the server does
/// not know, 405 with `Allow` for a known path asked with a method it does not serve, whoever
/// asks. Everything else goes on to the routes.
pub async fn refuse_unknown_paths(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let method = request.method().as_str();
    let refusal = match known_paths().allowed(request.path()) {
        None => Some(ApiError::NotFound(format!(
            "no route for {method} {}",
            request.path()
        ))),
        Some(allow) if !allow.split(", ").any(|served| served == method) => {
            Some(ApiError::MethodNotAllowed {
                method: method.to_string(),
                allow,
            })
        }
        Some(_) => None,
    };
    match refusal {
        None => next
            .call(request)
            .await
            .map(ServiceResponse::map_into_left_body),
        Some(refusal) => Ok(request
            .into_response(refusal.error_response())
            .map_into_right_body()),
    }
}

/// The server's known paths, built once from its OpenAPI document.
pub(crate) fn known_paths() -> &'static KnownPaths {
    static PATHS: OnceLock<KnownPaths> = OnceLock::new();
    PATHS.get_or_init(|| {
        KnownPaths::new(
            &super::openapi::full_document(),
            // Served, but not API operations: the page's files and Swagger UI's.
            &[
                ("/assets/page.css", &["GET"]),
                ("/assets/page.js", &["GET"]),
                ("/assets/i18n/{file}", &["GET"]),
                ("/assets/pow-worker.js", &["GET"]),
                ("/api/docs/{file:.*}", &["GET"]),
            ],
        )
    })
}

#[cfg(test)]
mod tests {
    use utoipa::openapi::path::{OperationBuilder, PathItem};
    use utoipa::openapi::{HttpMethod, OpenApiBuilder, PathsBuilder};

    use super::*;

    fn document() -> utoipa::openapi::OpenApi {
        let paths = PathsBuilder::new()
            .path(
                "/api/queue",
                PathItem::new(HttpMethod::Post, OperationBuilder::new().build()),
            )
            .path(
                "/api/queue",
                PathItem::new(HttpMethod::Get, OperationBuilder::new().build()),
            )
            .path(
                "/api/rooms/{roomId}",
                PathItem::new(HttpMethod::Get, OperationBuilder::new().build()),
            )
            .build();
        OpenApiBuilder::new().paths(paths).build()
    }

    #[test]
    fn a_known_path_names_every_method_it_serves() {
        let known = KnownPaths::new(&document(), &[]);
        let allowed = known.allowed("/api/queue").expect("known");
        assert!(
            allowed.contains("GET") && allowed.contains("POST"),
            "{allowed}"
        );
        assert_eq!(
            known.allowed("/api/rooms/golden-hour").as_deref(),
            Some("GET")
        );
        assert_eq!(
            known.allowed("/api/rooms/golden-hour/").as_deref(),
            Some("GET")
        );
    }

    #[test]
    fn an_unknown_path_is_none() {
        let known = KnownPaths::new(&document(), &[("/api/docs/{file:.*}", &["GET"])]);
        assert_eq!(known.allowed("/api/rooms"), None);
        assert_eq!(known.allowed("/api/rooms/a/b"), None);
        assert_eq!(known.allowed("/nowhere"), None);
        assert_eq!(known.allowed("/api/docs/index.css").as_deref(), Some("GET"));
        assert_eq!(known.allowed("/api/docs").as_deref(), Some("GET"));
    }
}
