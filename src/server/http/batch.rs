//! `POST /v1/{task}:batch`: NDJSON request messages in, NDJSON answers out, through the
//! gRPC streams' own logic ([`crate::server::stream`]): answers in request order, one per
//! item, `{"id", "result"}` or `{"id", "error": {"code", "message", "retry_after_ms"}}`,
//! the same in-flight bound (the body is read only as fast as answers are taken), and the
//! same shutdown. A line that is not a request message ends the stream, after the answers
//! of the lines before it, with a last line whose `id` is empty and whose `error` says
//! which line; so does a shutdown (UNAVAILABLE).

use std::future::Future;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream, StreamExt};
use serde::de::DeserializeOwned;
use tonic::metadata::MetadataMap;
use tonic::Status;

use crate::error::Error;
use crate::pb::{self, StreamAnswer, StreamRequest};
use crate::server::state::AppState;
use crate::server::stream::{self as streams, Run};
use crate::worker::Done;

/// The answers to an NDJSON body of `Req` lines, streamed as NDJSON lines of `Out`.
pub(super) fn respond<Req, Out, Fut>(
    state: &AppState,
    name: &'static str,
    run: Run<Req, Fut>,
    metadata: &MetadataMap,
    body: Body,
) -> Response
where
    Req: StreamRequest + DeserializeOwned + Send + 'static,
    Out: StreamAnswer + serde::Serialize + Send + 'static,
    Out::Result: Send + 'static,
    Fut: Future<Output = Result<Done<(Out::Result, usize)>, Error>> + Send + 'static,
{
    let inbound = Box::pin(lines::<Req>(body, state.max_message_bytes));
    let answers = streams::open_from::<Req, Out, Fut, _>(state, name, run, metadata, inbound);
    let out = answers.map(move |answer| {
        let answer = match answer {
            Ok(answer) => answer,
            // The stream's own end: the status as an answer without an id.
            Err(status) => Out::new(
                String::new(),
                Err(pb::ItemError {
                    code: status.code() as i32,
                    message: status.message().to_string(),
                    retry_after_ms: 0,
                }),
            ),
        };
        let mut line = serde_json::to_vec(&answer).unwrap_or_default();
        line.push(b'\n');
        Ok::<_, std::convert::Infallible>(Bytes::from(line))
    });
    let id = super::request_id(metadata);
    let mut response = (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        )],
        Body::from_stream(out),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// The request messages of an NDJSON body, one per non-blank line, read as they are
/// asked for. A line longer than `max_line` bytes, a line that is not a request message,
/// or a body that breaks off is an `Err` (which ends the stream).
fn lines<Req: DeserializeOwned + Send + 'static>(
    body: Body,
    max_line: usize,
) -> impl Stream<Item = Result<Req, Status>> + Send + 'static {
    struct Reader {
        data: axum::body::BodyDataStream,
        buffer: Vec<u8>,
        line: usize,
        done: bool,
    }
    let reader = Reader {
        data: body.into_data_stream(),
        buffer: Vec::new(),
        line: 0,
        done: false,
    };
    stream::unfold(reader, move |mut r| async move {
        loop {
            let newline = r.buffer.iter().position(|b| *b == b'\n');
            if let Some(end) = newline.filter(|end| *end <= max_line) {
                let rest = r.buffer.split_off(end + 1);
                let line = std::mem::replace(&mut r.buffer, rest);
                r.line += 1;
                if let Some(item) = parse_line(&line, r.line) {
                    return Some((item, r));
                }
                continue;
            }
            if newline.is_some() || r.buffer.len() > max_line {
                r.line += 1;
                let status = Status::out_of_range(format!(
                    "line {}: longer than {max_line} bytes (--max-message-bytes)",
                    r.line
                ));
                r.buffer.clear();
                r.done = true;
                return Some((Err(status), r));
            }
            if r.done {
                // The last line may lack its newline.
                if r.buffer.is_empty() {
                    return None;
                }
                let line = std::mem::take(&mut r.buffer);
                r.line += 1;
                match parse_line(&line, r.line) {
                    Some(item) => return Some((item, r)),
                    None => return None,
                }
            }
            match r.data.next().await {
                Some(Ok(chunk)) => r.buffer.extend_from_slice(&chunk),
                Some(Err(e)) => {
                    r.done = true;
                    r.buffer.clear();
                    return Some((
                        Err(Status::cancelled(format!(
                            "the request body broke off: {e}"
                        ))),
                        r,
                    ));
                }
                None => r.done = true,
            }
        }
    })
}

/// One NDJSON line as a request; `None` for a blank line.
fn parse_line<Req: DeserializeOwned>(line: &[u8], number: usize) -> Option<Result<Req, Status>> {
    let text = line.trim_ascii();
    if text.is_empty() {
        return None;
    }
    Some(serde_json::from_slice(text).map_err(|e| {
        Status::invalid_argument(format!("line {number}: not a valid request message: {e}"))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_skip_blanks_and_name_the_bad_line() {
        let body = Body::from(
            "{\"id\":\"a\",\"text\":\"x\"}\n\n  \r\n{\"id\":\"b\",\"text\":\"y\"}\r\n{oops\n{\"id\":\"c\"}",
        );
        let got: Vec<Result<pb::SummarizeRequest, Status>> = lines(body, 1024).collect().await;
        assert_eq!(got.len(), 4);
        assert_eq!(got[0].as_ref().unwrap().id, "a");
        assert_eq!(got[1].as_ref().unwrap().text, "y");
        let bad = got[2].as_ref().unwrap_err();
        assert_eq!(bad.code(), tonic::Code::InvalidArgument);
        assert!(bad.message().starts_with("line 5: "), "{}", bad.message());
        // The last line needs no newline.
        assert_eq!(got[3].as_ref().unwrap().id, "c");
    }

    #[tokio::test]
    async fn a_line_over_the_limit_ends_the_stream() {
        let body = Body::from(format!(
            "{{\"id\":\"a\",\"text\":\"{}\"}}\n",
            "x".repeat(100)
        ));
        let got: Vec<Result<pb::SummarizeRequest, Status>> = lines(body, 64).collect().await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].as_ref().unwrap_err().code(), tonic::Code::OutOfRange);
    }
}
