//! The plain copy engine: read into one ring buffer, write it out, repeat.
//!
//! One buffer per transfer and one write in flight at a time, through glommio's own
//! `recv`/`send`. It is the fallback when the relay ring is not available, the path for small
//! bodies (below `--relay-copy-below`), and the baseline the ring engine is measured against.
//! It borrows its buffer from the same fixed ring, so memory is the same in every mode.

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use shards::BufferRing;

use super::RelayError;

pub async fn copy(
    ring: &BufferRing,
    src: &mut TcpStream,
    dst: &mut TcpStream,
    len: Option<u64>,
) -> Result<u64, RelayError> {
    if len == Some(0) {
        return Ok(0);
    }
    let mut lease = ring.acquire().await;
    ring.note_transfer_held(1);
    let buf = lease.as_mut_slice();
    let mut moved: u64 = 0;
    loop {
        let want = match len {
            Some(n) => (n - moved).min(buf.len() as u64) as usize,
            None => buf.len(),
        };
        if want == 0 {
            return Ok(moved);
        }
        let n = src.read(&mut buf[..want]).await.map_err(RelayError::Read)?;
        if n == 0 {
            return match len {
                None => Ok(moved),
                Some(_) => Err(RelayError::UnexpectedEof),
            };
        }
        dst.write_all(&buf[..n]).await.map_err(RelayError::Write)?;
        moved += n as u64;
    }
}
