//! Frames after the handshake: length-prefixed payloads, each followed by a truncated
//! HMAC-SHA256 tag under the direction's key and the implicit frame counter.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// A keyed HMAC-SHA256, cloned per frame so the key schedule is computed once per connection.
pub(crate) type MacKey = Hmac<Sha256>;

/// Length of the truncated HMAC-SHA256 tag that ends every frame.
pub const TAG_LEN: usize = 16;
const LEN_PREFIX: usize = 4;
/// Minimum read size: one syscall usually brings in many small frames.
const READ_CHUNK: usize = 64 * 1024;

/// Why a connection's frame stream failed; every variant is fatal for the connection.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// A frame payload larger than [`crate::Limits::max_frame`].
    #[error("frame payload of {size} bytes exceeds the limit of {limit}")]
    Oversize {
        /// Payload size (announced by the peer, or passed to push).
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A tag that does not verify: tampering, replay, reordering, injection, or a frame too short
    /// to hold a tag.
    #[error("frame MAC does not verify")]
    BadMac,
    /// The peer closed the stream inside a frame.
    #[error("stream closed inside a frame")]
    Truncated,
    /// The underlying stream failed.
    #[error("frame i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl FrameError {
    /// A short, fixed label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            FrameError::Oversize { .. } => "oversize frame",
            FrameError::BadMac => "bad frame mac",
            FrameError::Truncated => "truncated frame",
            FrameError::Io(_) => "io",
        }
    }
}

fn mac(key: &MacKey, counter: u64, payload: &[u8]) -> MacKey {
    let mut mac = key.clone();
    mac.update(&counter.to_be_bytes());
    mac.update(payload);
    mac
}

/// The receiving half of a [`crate::Channel`].
pub struct FrameReader<R> {
    pub(crate) io: R,
    key: MacKey,
    counter: u64,
    pub(crate) buf: BytesMut,
    max_frame: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub(crate) fn new(io: R, key: MacKey, max_frame: usize) -> Self {
        FrameReader { io, key, counter: 0, buf: BytesMut::new(), max_frame }
    }

    /// Change the largest payload accepted from now on (e.g. a tighter limit once the peer
    /// turns out to be a client): announced lengths over it fail before anything is buffered.
    pub fn set_max_frame(&mut self, max_frame: usize) {
        self.max_frame = max_frame;
    }

    /// The next authenticated payload, or `Ok(None)` at EOF on a frame boundary. Note that an
    /// attacker on the path can also cut the connection, so EOF means "no more frames", not
    /// "the peer meant to stop".
    ///
    /// The payload is a slice of the shared read buffer, not a copy: holding it keeps that
    /// buffer's allocation alive, so copy payloads that are kept for long.
    ///
    /// Cancel-safe: partial input stays buffered, so this can be used in `select!`.
    pub async fn next(&mut self) -> Result<Option<Bytes>, FrameError> {
        loop {
            if let Some(frame) = self.next_buffered()? {
                return Ok(Some(frame));
            }
            // Reserve the whole rest of a large frame at once, so it is read without regrowing.
            let need = self.announced()?.map_or(LEN_PREFIX, |len| LEN_PREFIX + len);
            self.buf.reserve((need - self.buf.len()).max(READ_CHUNK));
            if self.io.read_buf(&mut self.buf).await? == 0 {
                return if self.buf.is_empty() { Ok(None) } else { Err(FrameError::Truncated) };
            }
        }
    }

    /// The next authenticated payload if it has already been read in whole, without
    /// waiting for I/O (so that a caller can take every frame a read brought in at once).
    pub fn next_buffered(&mut self) -> Result<Option<Bytes>, FrameError> {
        let Some(len) = self.announced()? else { return Ok(None) };
        if self.buf.len() < LEN_PREFIX + len {
            return Ok(None);
        }
        self.buf.advance(LEN_PREFIX);
        let mut frame = self.buf.split_to(len);
        let size = len - TAG_LEN;
        mac(&self.key, self.counter, &frame[..size])
            .verify_truncated_left(&frame[size..])
            .map_err(|_| FrameError::BadMac)?;
        frame.truncate(size);
        self.counter += 1;
        Ok(Some(frame.freeze()))
    }

    /// The length (payload and tag) the buffered frame announces, once its prefix is in.
    fn announced(&self) -> Result<Option<usize>, FrameError> {
        let Some(prefix) = self.buf.first_chunk::<LEN_PREFIX>() else { return Ok(None) };
        let len = u32::from_be_bytes(*prefix) as usize;
        let size = len.checked_sub(TAG_LEN).ok_or(FrameError::BadMac)?;
        // Checked before reserving, so a hostile length never turns into an allocation.
        if size > self.max_frame {
            return Err(FrameError::Oversize { size, limit: self.max_frame });
        }
        Ok(Some(len))
    }
}

/// The sending half of a [`crate::Channel`]: frames are pushed into a buffer and written by
/// [`FrameWriter::flush`], so a burst of messages costs one or a few write syscalls.
pub struct FrameWriter<W> {
    pub(crate) io: W,
    key: MacKey,
    counter: u64,
    pub(crate) buf: BytesMut,
    max_frame: usize,
}

impl<W> FrameWriter<W> {
    pub(crate) fn new(io: W, key: MacKey, max_frame: usize) -> Self {
        FrameWriter { io, key, counter: 0, buf: BytesMut::new(), max_frame }
    }

    /// Append one framed, MAC'd payload to the buffer (no I/O). The buffer is unbounded: use
    /// [`FrameWriter::buffered`] for back-pressure.
    pub fn push(&mut self, payload: &[u8]) -> Result<(), FrameError> {
        let size = payload.len();
        if size > self.max_frame || size > u32::MAX as usize - TAG_LEN {
            return Err(FrameError::Oversize { size, limit: self.max_frame });
        }
        self.buf.reserve(LEN_PREFIX + size + TAG_LEN);
        self.buf.put_u32((size + TAG_LEN) as u32);
        self.buf.put_slice(payload);
        self.buf.put_slice(&mac(&self.key, self.counter, payload).finalize().into_bytes()[..TAG_LEN]);
        // A u64 counter cannot wrap in practice (centuries at one frame per nanosecond), so the
        // (key, counter) pair is never reused.
        self.counter += 1;
        Ok(())
    }

    /// Bytes pushed but not yet written.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// Write everything buffered, in as few syscalls as the stream allows.
    ///
    /// Cancel-safe: bytes leave the buffer only once written, so a cancelled flush can be resumed.
    pub async fn flush(&mut self) -> Result<(), FrameError> {
        while self.buf.has_remaining() {
            if self.io.write_buf(&mut self.buf).await? == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into());
            }
        }
        self.io.flush().await?;
        Ok(())
    }

    /// Flush, then close the write direction: the peer's reader sees a clean EOF. (Dropping a
    /// split writer does not close the stream while its reader half is alive.)
    pub async fn shutdown(&mut self) -> Result<(), FrameError> {
        self.flush().await?;
        self.io.shutdown().await?;
        Ok(())
    }

    /// Push one payload and flush.
    pub async fn send(&mut self, payload: &[u8]) -> Result<(), FrameError> {
        self.push(payload)?;
        self.flush().await
    }
}
