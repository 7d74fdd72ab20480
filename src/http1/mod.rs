//! The HTTP/1.1 codec: parses and encodes message heads and chunked framing
//! on byte slices, with no I/O (the relay does the reading and writing).
//!
//! Parsed heads hold [`Span`]s into the caller's buffer and are reused
//! between messages, so steady-state parsing does not allocate. Parsing is
//! strict (RFC 9112/9110): a message that the proxy and a backend could
//! frame differently is refused, since that is how requests get smuggled.

mod chunk_line;
mod chunked;
mod connection;
pub(crate) mod date;
mod encode;
mod framing;
mod host;
mod limits;
mod local;
mod request;
mod response;
mod span;
mod status;
mod syntax;
mod target;
mod trailer;
mod underscores;
mod version;

pub use chunked::{
    encode_chunk_size, encode_last_chunk, Chunk, ChunkError, ChunkedDecoder, CHUNK_DATA_END,
    MAX_CHUNK_LINE, MAX_TRAILER_BYTES, MAX_TRAILER_FIELDS,
};
pub use date::{http_date_now, imf_fixdate, IMF_FIXDATE_LEN};
pub use encode::{
    add_field, encode_request, encode_request_to, encode_response, ForwardInfo, OutFraming,
};
pub use limits::{
    Limits, DEFAULT_MAX_HEADERS, DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_TARGET_LEN, MAX_CHUNK_SIZE,
    MAX_CONTENT_LENGTH, MAX_FORWARDS_LIMIT, MAX_HEADERS_LIMIT, MAX_HEADER_BYTES_LIMIT,
};
pub use local::{encode_options_response, encode_trace_response};
pub use request::{parse_request, Method, RequestBody, RequestError, RequestHead, Version};
pub use response::{parse_response, ResponseBody, ResponseError, ResponseHead};
pub use span::{HeaderSpan, Span};
pub use status::{
    error_response, error_response_because, error_response_with, reason_phrase, CONTINUE_100,
};
pub use syntax::is_tchar;
pub use target::TargetPrefix;
pub use underscores::{UnderscoreAction, READS_AS};
pub use version::normalize_request_version;
