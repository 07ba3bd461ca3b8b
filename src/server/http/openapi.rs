//! The OpenAPI 3 document of the HTTP API (`GET /openapi.json`), written from the two
//! sources of truth: the endpoints of [`super::ROUTES`] and the messages of the proto, read
//! from the descriptor set the build embeds (field names, types, and the proto's comments
//! as descriptions). It cannot drift from either.

use std::collections::{BTreeMap, HashMap};

use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FileDescriptorProto, FileDescriptorSet};
use serde_json::{json, Map, Value};

use super::{Kind, ROUTES, TIMEOUT_HEADER};
use crate::pb;
use crate::server::config::Limits;

/// The error statuses a POST endpoint may answer, and when.
const ERRORS: [(&str, &str); 9] = [
    ("400", "INVALID_ARGUMENT: a malformed body, an empty or too long text, an option out of range, a bad X-Request-Timeout-Ms"),
    ("401", "UNAUTHENTICATED: --auth-tokens is on and the call has no valid `Authorization: Bearer` token"),
    ("412", "FAILED_PRECONDITION: SUMMARY_MODE_ABSTRACTIVE without a summarization model"),
    ("413", "OUT_OF_RANGE: the body is over --max-message-bytes"),
    ("429", "RESOURCE_EXHAUSTED: the task's queue is full; retry after Retry-After seconds"),
    ("500", "INTERNAL: the model failed on this input"),
    ("503", "UNAVAILABLE: models loading, the model this service needs missing, or shutting down"),
    ("408", "DEADLINE_EXCEEDED: the deadline (X-Request-Timeout-Ms, or --request-timeout-ms) passed"),
    ("405", "UNIMPLEMENTED: another method than POST"),
];

/// The OpenAPI 3.0 document of a server with `limits` (they become the schemas' bounds).
pub fn document(limits: &Limits) -> Value {
    let set = FileDescriptorSet::decode(pb::FILE_DESCRIPTOR_SET)
        .expect("the embedded descriptor set is valid");
    let file = set
        .file
        .iter()
        .find(|f| f.package() == "gist.v1")
        .expect("the descriptor set has gist.v1");
    let mut schemas = Map::new();
    let comments = comments(file);
    let inputs = request_side(file);
    for (index, message) in file.message_type.iter().enumerate() {
        let input = inputs.contains(message.name());
        let mut schema = message_schema(file, message, index, input, &comments);
        bounds(message.name(), &mut schema, limits);
        schemas.insert(message.name().to_string(), schema);
    }
    for (index, e) in file.enum_type.iter().enumerate() {
        let values: Vec<&str> = e.value.iter().map(|v| v.name()).collect();
        let mut schema = json!({"type": "string", "enum": values});
        if let Some(text) = comments.get(&vec![5, index as i32]) {
            schema["description"] = text.clone().into();
        }
        schemas.insert(e.name().to_string(), schema);
    }
    schemas.insert(
        "Error".into(),
        json!({
            "type": "object",
            "description": "Every error answer: the gRPC status code (a number: 3 INVALID_ARGUMENT, 8 RESOURCE_EXHAUSTED…) and a message naming the field and the limit.",
            "required": ["code", "message"],
            "additionalProperties": false,
            "properties": {
                "code": {"type": "integer", "format": "int32"},
                "message": {"type": "string"}
            }
        }),
    );
    let service_names: Vec<&str> = crate::server::rpc::SERVICES
        .iter()
        .map(|(name, _)| *name)
        .collect();
    let health_status =
        json!({"type": "string", "enum": ["SERVING", "NOT_SERVING", "UNKNOWN", "SERVICE_UNKNOWN"]});
    schemas.insert(
        "Readiness".into(),
        json!({
            "type": "object",
            "required": ["service", "status", "services"],
            "additionalProperties": false,
            "properties": {
                "service": {"type": "string", "description": "The service asked about; empty for the server as a whole."},
                "status": health_status,
                "services": {
                    "type": "object",
                    "description": "Every gist service and its grpc.health.v1 status.",
                    "additionalProperties": health_status,
                }
            }
        }),
    );

    let mut paths = Map::new();
    for route in ROUTES {
        let item = match route.kind {
            Kind::Unary | Kind::Batch => json!({"post": post(&route)}),
            Kind::Get => json!({"get": get(&route, &service_names)}),
        };
        paths.insert(route.path.to_string(), item);
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "gist HTTP/JSON API",
            "version": "v1",
            "description": "Key points and named entities of articles. The same API as the gRPC services of proto/gist/v1/gist.proto: bodies are the proto3 JSON mapping of its messages (written with the proto field names, every field present; either spelling is read). Offsets come in code points (start/end), UTF-8 bytes (byte_start/byte_end) and UTF-16 code units (utf16_start/utf16_end).",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "Only when the server runs with --auth-tokens."}},
        },
    })
}

fn reference(message: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{message}")})
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "headers": {"x-request-id": {"schema": {"type": "string"}}},
        "content": {"application/json": {"schema": reference("Error")}},
    })
}

fn post(route: &super::Route) -> Value {
    let request = route.request.unwrap_or_default();
    let (summary, request_body, ok) = match route.kind {
        Kind::Batch => (
            format!(
                "{}: many requests, one JSON object per line (NDJSON), each with its own non-empty id; one answer line per request, in request order, with its result or its error. A last line with an empty id is the stream's own error (a malformed line, a shutdown).",
                route.rpc
            ),
            json!({
                "required": true,
                "content": {"application/x-ndjson": {"schema": reference(request)}},
            }),
            json!({
                "description": "One answer per line.",
                "headers": {"x-request-id": {"schema": {"type": "string"}}},
                "content": {"application/x-ndjson": {"schema": reference(route.response)}},
            }),
        ),
        _ => (
            route.rpc.to_string(),
            json!({
                "required": true,
                "content": {"application/json": {"schema": reference(request)}},
            }),
            json!({
                "description": "The answer, with where the time went in x-queue-time-ms, x-inference-time-ms, x-total-time-ms and x-batch-size.",
                "headers": {
                    "x-request-id": {"schema": {"type": "string"}},
                    "x-total-time-ms": {"schema": {"type": "string"}},
                },
                "content": {"application/json": {"schema": reference(route.response)}},
            }),
        ),
    };
    let mut responses = Map::new();
    responses.insert("200".into(), ok);
    for (status, description) in ERRORS {
        responses.insert(status.into(), error_response(description));
    }
    json!({
        "operationId": route.rpc.rsplit('/').next().unwrap_or(route.rpc),
        "summary": summary,
        "parameters": [
            {"name": TIMEOUT_HEADER, "in": "header", "required": false,
             "description": "The call's deadline in milliseconds (capped by the server's --request-timeout-ms; without it, that is the deadline). For :batch, the deadline of the whole stream.",
             "schema": {"type": "integer", "minimum": 1}},
            {"name": "x-request-id", "in": "header", "required": false,
             "description": "The caller's request id (printable ASCII, at most 128 characters), echoed and logged; else a new UUID.",
             "schema": {"type": "string"}},
        ],
        "requestBody": request_body,
        "responses": responses,
        "security": [{}, {"bearer": []}],
    })
}

fn get(route: &super::Route, services: &[&str]) -> Value {
    match route.kind {
        Kind::Get if route.path == "/readyz" => json!({
            "operationId": "readiness",
            "summary": "Readiness: 200 when the server as a whole (or the service asked for) is SERVING in grpc.health.v1, else 503; every service's status in the body.",
            "parameters": [{"name": "service", "in": "query", "required": false,
                            "schema": {"type": "string", "enum": services}}],
            "responses": {
                "200": {"description": "Ready.", "content": {"application/json": {"schema": reference("Readiness")}}},
                "503": {"description": "Not ready (loading, failed, shutting down, or the service's model is missing).", "content": {"application/json": {"schema": reference("Readiness")}}},
                "404": error_response("NOT_FOUND: gist has no such service"),
            },
        }),
        Kind::Get if route.path == "/v1/models" => json!({
            "operationId": "ListModels",
            "summary": "gist.v1.Models/ListModels: every model, with its task, version, runtime, precision, labels and state (READY, LOADING, or FAILED with the error).",
            "responses": {
                "200": {"description": "The models.", "content": {"application/json": {"schema": reference("ListModelsResponse")}}},
                "401": error_response("UNAUTHENTICATED: a token is required and was missing or wrong"),
            },
            "security": [{}, {"bearer": []}],
        }),
        Kind::Get if route.path == "/healthz" => json!({
            "operationId": "liveness",
            "summary": "Liveness: 200 while the process answers.",
            "responses": {"200": {"description": "Alive.", "content": {"application/json": {"schema": {
                "type": "object", "required": ["status"], "additionalProperties": false,
                "properties": {"status": {"type": "string", "enum": ["ok"]}}}}}}},
        }),
        _ => json!({
            "operationId": "openapi",
            "summary": "This document.",
            "responses": {"200": {"description": "The OpenAPI 3 document.", "content": {"application/json": {"schema": {"type": "object"}}}}},
        }),
    }
}

/// The request validation rules (`rpc::check_text` and the rest) that a schema can say,
/// so that a client (or a fuzzer) knows the limits before it is refused.
fn bounds(message: &str, schema: &mut Value, limits: &Limits) {
    let text = json!({"minLength": 1, "maxLength": limits.max_text_chars, "pattern": "\\S"});
    let label = json!({"minLength": 1, "pattern": "\\S"});
    let rules: Vec<(&str, Value)> = match message {
        "SummarizeRequest" | "ExtractEntitiesRequest" | "AnalyzeRequest" => vec![
            ("text", text),
            ("max_key_points", json!({"maximum": limits.max_key_points})),
            ("min_score", json!({"minimum": 0, "maximum": 1})),
            (
                "labels",
                json!({"maxItems": rpc_max_labels(), "items": label}),
            ),
        ],
        "GenerationOptions" => vec![
            (
                "max_length",
                json!({"maximum": limits.max_generation_tokens}),
            ),
            (
                "min_length",
                json!({"maximum": limits.max_generation_tokens}),
            ),
            ("num_beams", json!({"maximum": limits.max_beams})),
            ("no_repeat_ngram_size", json!({"maximum": 10})),
            ("length_penalty", json!({"minimum": 0, "maximum": 5})),
        ],
        _ => Vec::new(),
    };
    for (field, rule) in rules {
        let Some(target) = schema["properties"].get_mut(field) else {
            continue;
        };
        for (key, value) in rule.as_object().into_iter().flatten() {
            match (key.as_str(), target.get_mut("items")) {
                ("items", Some(items)) => {
                    for (k, v) in value.as_object().into_iter().flatten() {
                        items[k] = v.clone();
                    }
                }
                _ => target[key] = value.clone(),
            }
        }
    }
}

fn rpc_max_labels() -> usize {
    crate::server::rpc::entities::MAX_LABELS
}

/// Leading comments of the proto, by source path (`[4, message, 2, field]` for a field).
fn comments(file: &FileDescriptorProto) -> HashMap<Vec<i32>, String> {
    let mut out = HashMap::new();
    if let Some(info) = &file.source_code_info {
        for location in &info.location {
            let text = location.leading_comments();
            if !text.trim().is_empty() {
                let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
                out.insert(location.path.clone(), text);
            }
        }
    }
    out
}

/// The messages a request is made of: the `…Request` messages and those they contain.
fn request_side(file: &FileDescriptorProto) -> std::collections::HashSet<String> {
    let mut out: std::collections::HashSet<String> = file
        .message_type
        .iter()
        .filter(|m| m.name().ends_with("Request"))
        .map(|m| m.name().to_string())
        .collect();
    loop {
        let before = out.len();
        let inner: Vec<String> = file
            .message_type
            .iter()
            .filter(|m| out.contains(m.name()))
            .flat_map(|m| m.field.iter())
            .filter(|f| f.r#type() == Type::Message)
            .map(|f| {
                f.type_name()
                    .rsplit('.')
                    .next()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        out.extend(inner);
        if out.len() == before {
            return out;
        }
    }
}

fn message_schema(
    file: &FileDescriptorProto,
    message: &DescriptorProto,
    index: usize,
    request: bool,
    comments: &HashMap<Vec<i32>, String>,
) -> Value {
    let mut properties = BTreeMap::new();
    let mut required = Vec::new();
    for (i, field) in message.field.iter().enumerate() {
        let mut schema = field_schema(file, field);
        if let Some(text) = comments.get(&vec![4, index as i32, 2, i as i32]) {
            if schema.get("$ref").is_some() {
                schema = json!({"allOf": [schema], "description": text});
            } else {
                schema["description"] = text.clone().into();
            }
        }
        properties.insert(field.name().to_string(), schema);
        // Responses carry every field except unset `optional` ones and the oneof's
        // other branch; requests need only a text.
        let optional = field.proto3_optional() || field.oneof_index.is_some();
        let text = message.name().ends_with("Request") && field.name() == "text";
        if (!request && !optional) || text {
            required.push(field.name().to_string());
        }
    }
    let mut schema = json!({
        "type": "object",
        "additionalProperties": false,
        "properties": properties,
    });
    if !required.is_empty() {
        schema["required"] = required.into();
    }
    if let Some(text) = comments.get(&vec![4, index as i32]) {
        schema["description"] = text.clone().into();
    }
    schema
}

fn field_schema(file: &FileDescriptorProto, field: &prost_types::FieldDescriptorProto) -> Value {
    let one = match field.r#type() {
        Type::String => json!({"type": "string"}),
        Type::Bool => json!({"type": "boolean"}),
        Type::Uint32 | Type::Fixed32 => {
            json!({"type": "integer", "minimum": 0, "maximum": u32::MAX})
        }
        Type::Int32 | Type::Sint32 | Type::Sfixed32 => {
            json!({"type": "integer", "format": "int32"})
        }
        Type::Float => json!({"type": "number", "format": "float"}),
        Type::Double => json!({"type": "number", "format": "double"}),
        Type::Message | Type::Enum => {
            let name = field.type_name().rsplit('.').next().unwrap_or_default();
            debug_assert!(
                file.message_type.iter().any(|m| m.name() == name)
                    || file.enum_type.iter().any(|e| e.name() == name)
            );
            reference(name)
        }
        // gist.v1 has no 64-bit or bytes fields; proto3 JSON writes them as strings.
        _ => json!({"type": "string"}),
    };
    if field.label() == Label::Repeated {
        json!({"type": "array", "items": one})
    } else {
        one
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_with_its_messages() {
        let doc = document(&Limits::default());
        let paths = doc["paths"].as_object().unwrap();
        assert_eq!(paths.len(), ROUTES.len());
        for route in ROUTES {
            let item = &paths[route.path];
            match route.kind {
                Kind::Get => assert!(item["get"].is_object(), "{}", route.path),
                Kind::Unary | Kind::Batch => {
                    let post = &item["post"];
                    let body = post["requestBody"]["content"].as_object().unwrap();
                    let schema = &body.values().next().unwrap()["schema"]["$ref"];
                    let request = route.request.unwrap();
                    assert_eq!(schema, &format!("#/components/schemas/{request}"));
                    assert!(doc["components"]["schemas"][request].is_object());
                    assert!(doc["components"]["schemas"][route.response].is_object());
                    for status in ["200", "400", "408", "429", "503"] {
                        assert!(post["responses"][status].is_object(), "{status}");
                    }
                }
            }
        }
    }

    #[test]
    fn schemas_follow_the_proto() {
        let doc = document(&Limits::default());
        let entity = &doc["components"]["schemas"]["Entity"];
        let properties = entity["properties"].as_object().unwrap();
        for field in [
            "text",
            "label",
            "score",
            "start",
            "end",
            "byte_start",
            "byte_end",
            "utf16_start",
            "utf16_end",
        ] {
            assert!(properties.contains_key(field), "Entity.{field}");
        }
        assert_eq!(properties["utf16_start"]["type"], "integer");
        assert!(properties["utf16_start"]["description"]
            .as_str()
            .unwrap()
            .contains("UTF-16"));
        let key_point = &doc["components"]["schemas"]["KeyPoint"];
        let required: Vec<&str> = key_point["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(required, ["text", "score"]);
        assert_eq!(
            doc["components"]["schemas"]["SummaryMode"]["enum"][2],
            "SUMMARY_MODE_EXTRACTIVE"
        );
        assert_eq!(
            doc["components"]["schemas"]["SummarizeRequest"]["required"],
            json!(["text"])
        );
        let labels =
            &doc["components"]["schemas"]["ExtractEntitiesRequest"]["properties"]["labels"];
        assert_eq!(labels["type"], "array");
        // Part of a request: nothing in it is required.
        assert!(doc["components"]["schemas"]["GenerationOptions"]["required"].is_null());
        // The limits become bounds.
        let request = &doc["components"]["schemas"]["SummarizeRequest"]["properties"];
        assert_eq!(request["max_key_points"]["maximum"], 20);
        assert_eq!(request["text"]["maxLength"], 100_000);
    }
}
