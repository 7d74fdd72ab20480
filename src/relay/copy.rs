//! The plain copy engine: read into one pooled buffer, write it out, repeat.
//!
//! One buffer per transfer and one write in flight at a time. It is the portable fallback
//! and the baseline the registered-buffer engine is measured against.

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use super::{BufferPool, RelayError};

pub async fn copy(
    pool: &BufferPool,
    src: &mut TcpStream,
    dst: &mut TcpStream,
    len: Option<u64>,
) -> Result<u64, RelayError> {
    if len == Some(0) {
        return Ok(0);
    }
    let mut buf = pool.acquire().await;
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
