//! Moving one message body, by its framing, from a [`Peer`] to the other side's socket.
//!
//! This is where framing meets the relay seam: Content-Length bodies and chunk data go
//! through [`Relay::copy`]; chunk size lines and trailers are checked by the codec's
//! [`ChunkedDecoder`] and written afresh, so that no framing byte the backend could read
//! differently is ever passed through raw.

use std::io;

use shards::Conn;

use super::error::{ErrorKind, ProxyError, Side};
use super::peer::{self, Peer};
use crate::http1::{
    encode_chunk_size, encode_last_chunk, Chunk, ChunkError, ChunkedDecoder, ResponseError,
    CHUNK_DATA_END,
};
use crate::relay::{Relay, RelayError};

/// How the incoming body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyIn {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

/// Which side a body transfer failed on.
#[derive(Debug)]
pub enum BodyError {
    /// Reading the source failed, it ended early, or its chunked framing is invalid.
    Source(SourceError),
    /// Writing to the destination failed.
    Dest(io::Error),
}

impl BodyError {
    /// The error a failed body transfer is, given which side its bytes came `from`: that
    /// side's faults are its own (a stalled client body is a 408, like a slow head); a
    /// failed write is the other side's.
    pub fn into_proxy(self, from: Side) -> ProxyError {
        let own = |e: io::Error| match from {
            Side::Client => ProxyError::client_io(e),
            Side::Backend => ProxyError::backend_io(e),
        };
        let other = |e: io::Error| match from {
            Side::Client => ProxyError::backend_io(e),
            Side::Backend => ProxyError::client_io(e),
        };
        match (self, from) {
            (BodyError::Source(SourceError::Io(e)), Side::Client)
                if e.kind() == io::ErrorKind::TimedOut =>
            {
                ProxyError::new(ErrorKind::HeaderTimeout)
            }
            (BodyError::Source(SourceError::Io(e)), _) => own(e),
            (BodyError::Source(SourceError::Eof), Side::Client) => {
                ProxyError::new(ErrorKind::ClientEof)
            }
            (BodyError::Source(SourceError::Eof), Side::Backend) => {
                ProxyError::new(ErrorKind::BackendClosed)
            }
            (BodyError::Source(SourceError::Chunk(c)), Side::Client) => {
                ProxyError::new(ErrorKind::BadRequestBody(c))
            }
            (BodyError::Source(SourceError::Chunk(c)), Side::Backend) => {
                ProxyError::new(ErrorKind::BadResponseBody(c))
            }
            (BodyError::Source(SourceError::TooLarge), Side::Client) => {
                ProxyError::new(ErrorKind::BodyTooLarge)
            }
            // Responses are relayed without a size limit (0), so this does not happen.
            (BodyError::Source(SourceError::TooLarge), Side::Backend) => ProxyError::new(
                ErrorKind::BadResponse(ResponseError::Malformed("response body over limit")),
            ),
            (BodyError::Dest(e), _) => other(e),
        }
    }
}

#[derive(Debug)]
pub enum SourceError {
    Io(io::Error),
    Eof,
    Chunk(ChunkError),
    /// A chunked body grew past the size limit the caller gave.
    TooLarge,
}

/// Where a body goes: the destination socket, and bytes waiting to be written to it
/// (usually the encoded head, which goes out with the first body bytes in one write).
pub struct Outbox<'a> {
    pub dst: &'a mut Conn,
    pub pending: &'a mut Vec<u8>,
    /// Set once anything was written: from then on the destination has seen part of the
    /// message, and a failure can only be reported by cutting the connection.
    pub wrote: bool,
    /// Bytes written to the destination (for the access log).
    pub sent: u64,
}

impl<'a> Outbox<'a> {
    pub fn new(dst: &'a mut Conn, pending: &'a mut Vec<u8>) -> Outbox<'a> {
        Outbox {
            dst,
            pending,
            wrote: false,
            sent: 0,
        }
    }

    async fn flush(&mut self) -> Result<(), BodyError> {
        if !self.pending.is_empty() {
            self.wrote = true;
            self.sent += self.pending.len() as u64;
            let r = peer::send(self.dst, self.pending).await;
            self.pending.clear();
            r.map_err(BodyError::Dest)?;
        }
        Ok(())
    }

    async fn copy(
        &mut self,
        relay: &Relay,
        src: &mut Peer,
        len: Option<u64>,
    ) -> Result<(), BodyError> {
        self.wrote = true;
        // Bytes the connection received beyond what the head buffer took go first; the
        // relay itself starts at the socket.
        let mut len = len;
        if src.conn.ready_len() > 0 {
            let max = len.map_or(usize::MAX, |n| n.min(usize::MAX as u64) as usize);
            let got = src.conn.drain_ready(self.pending, max) as u64;
            if let Some(n) = len.as_mut() {
                *n -= got;
            }
            self.flush().await?;
            if len == Some(0) {
                return Ok(());
            }
        }
        match relay.copy(&mut src.conn, self.dst, len).await {
            Ok(n) => {
                self.sent += n;
                Ok(())
            }
            Err(RelayError::Read(e)) => Err(BodyError::Source(SourceError::Io(e))),
            Err(RelayError::UnexpectedEof) => Err(BodyError::Source(SourceError::Eof)),
            Err(RelayError::Write(e)) => Err(BodyError::Dest(e)),
        }
    }
}

/// Sends what is pending in `out`, then the body. A chunked body is re-chunked when
/// `rechunk` is true and de-chunked (data only) otherwise, and refused once its data passes
/// `limit` bytes (0: no limit; a Content-Length body is checked before it is sent).
pub async fn transfer(
    src: &mut Peer,
    out: &mut Outbox<'_>,
    body: BodyIn,
    rechunk: bool,
    limit: u64,
    relay: &Relay,
    decoder: &mut ChunkedDecoder,
) -> Result<(), BodyError> {
    match body {
        BodyIn::Empty => out.flush().await,
        BodyIn::Length(n) => {
            let take = (src.buffered().len() as u64).min(n) as usize;
            out.pending.extend_from_slice(&src.buffered()[..take]);
            src.consume(take);
            // Everything buffered is in `pending` now: the head buffer need not wait for the
            // send (a burst of 10,000 answers would otherwise hold 10,000 of them).
            src.release_if_empty();
            out.flush().await?;
            out.copy(relay, src, Some(n - take as u64)).await
        }
        BodyIn::UntilClose => {
            out.pending.extend_from_slice(src.buffered());
            let all = src.buffered().len();
            src.consume(all);
            out.flush().await?;
            out.copy(relay, src, None).await
        }
        // Boxed: chunked bodies are the rarer case, and their state would otherwise widen
        // every connection task (one allocation per chunked body instead).
        BodyIn::Chunked => Box::pin(dechunk(src, out, rechunk, limit, relay, decoder)).await,
    }
}

async fn dechunk(
    src: &mut Peer,
    out: &mut Outbox<'_>,
    rechunk: bool,
    limit: u64,
    relay: &Relay,
    decoder: &mut ChunkedDecoder,
) -> Result<(), BodyError> {
    decoder.reset();
    let mut total: u64 = 0;
    loop {
        let (used, event) = decoder
            .feed(src.buffered())
            .map_err(|e| BodyError::Source(SourceError::Chunk(e)))?;
        match event {
            Chunk::Data { len } => {
                // Each chunk is moved whole in this arm, so every Data event starts a chunk,
                // and the chunk goes out with the same size (extensions dropped).
                src.consume(used);
                total = total.saturating_add(len);
                if limit > 0 && total > limit {
                    return Err(BodyError::Source(SourceError::TooLarge));
                }
                if rechunk {
                    encode_chunk_size(len, out.pending);
                }
                let take = (src.buffered().len() as u64).min(len) as usize;
                out.pending.extend_from_slice(&src.buffered()[..take]);
                src.consume(take);
                decoder.data_consumed(take as u64);
                let rest = len - take as u64;
                if rest > 0 {
                    out.flush().await?;
                    out.copy(relay, src, Some(rest)).await?;
                    decoder.data_consumed(rest);
                }
                if rechunk {
                    out.pending.extend_from_slice(CHUNK_DATA_END);
                }
            }
            Chunk::Incomplete => {
                src.consume(used);
                // Send what we have before waiting: the peer may be waiting for it.
                out.flush().await?;
                if src.is_full() {
                    return Err(BodyError::Source(SourceError::Chunk(
                        ChunkError::LineTooLong,
                    )));
                }
                match src.fill().await {
                    Ok(0) => return Err(BodyError::Source(SourceError::Eof)),
                    Ok(_) => {}
                    Err(e) => return Err(BodyError::Source(SourceError::Io(e))),
                }
            }
            Chunk::End { trailers } => {
                if rechunk {
                    encode_last_chunk(&src.buffered()[trailers], out.pending);
                }
                src.consume(used);
                return out.flush().await;
            }
        }
    }
}
