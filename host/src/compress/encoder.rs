//! Streaming encoders (gzip, Brotli, zstd) and the response body they compress: output is
//! sent as it is made, and flushed whenever the upstream has nothing more for the moment,
//! so a slow or streamed response is never held back.

use super::Coding;
use crate::body::{Body, BoxError};
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Window of the Brotli and zstd encoders, as a power of two (512 KiB).
const WINDOW_LOG: u32 = 19;

/// One response's encoder.
pub enum Encoder {
    /// gzip (RFC 1952).
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    /// Brotli (RFC 7932).
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
    /// Zstandard (RFC 8878).
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl Encoder {
    /// An encoder for `coding` at `level`.
    pub fn new(coding: Coding, level: u32) -> std::io::Result<Self> {
        Ok(match coding {
            Coding::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(level.min(9)),
            )),
            // 4 KiB internal buffer and a 19-bit window (512 KiB, as nginx's brotli module):
            // every response being compressed holds one, so the window bounds the memory a
            // crowd of slow clients can pin.
            Coding::Brotli => Encoder::Brotli(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                4096,
                level.min(11),
                WINDOW_LOG,
            ))),
            Coding::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(Vec::new(), level.min(22) as i32)?;
                e.window_log(WINDOW_LOG)?;
                Encoder::Zstd(e)
            }
        })
    }

    fn output(&mut self) -> &mut Vec<u8> {
        match self {
            Encoder::Gzip(e) => e.get_mut(),
            Encoder::Brotli(e) => e.get_mut(),
            Encoder::Zstd(e) => e.get_mut(),
        }
    }

    /// Compress `data`; what output is ready.
    pub fn write(&mut self, data: &[u8]) -> std::io::Result<Bytes> {
        match self {
            Encoder::Gzip(e) => e.write_all(data)?,
            Encoder::Brotli(e) => e.write_all(data)?,
            Encoder::Zstd(e) => e.write_all(data)?,
        }
        Ok(Bytes::from(std::mem::take(self.output())))
    }

    /// Everything written so far, decodable now.
    pub fn flush(&mut self) -> std::io::Result<Bytes> {
        match self {
            Encoder::Gzip(e) => e.flush()?,
            Encoder::Brotli(e) => e.flush()?,
            Encoder::Zstd(e) => e.flush()?,
        }
        Ok(Bytes::from(std::mem::take(self.output())))
    }

    /// The end of the stream.
    pub fn finish(self) -> std::io::Result<Bytes> {
        Ok(Bytes::from(match self {
            Encoder::Gzip(e) => e.finish()?,
            Encoder::Brotli(mut e) => {
                e.flush()?;
                e.into_inner()
            }
            Encoder::Zstd(e) => e.finish()?,
        }))
    }
}

/// A response body compressed on its way out.
pub struct Encoding {
    inner: Pin<Box<Body>>,
    encoder: Option<Encoder>,
    /// Input written since output was last flushed.
    unflushed: bool,
    /// Trailers that came after the data, sent after the encoder's last bytes.
    trailers: Option<http::HeaderMap>,
}

impl Encoding {
    /// `inner`, compressed by `encoder`.
    pub fn new(inner: Body, encoder: Encoder) -> Self {
        Encoding {
            inner: Box::pin(inner),
            encoder: Some(encoder),
            unflushed: false,
            trailers: None,
        }
    }
}

impl std::fmt::Debug for Encoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoding")
            .field("finished", &self.encoder.is_none())
            .finish()
    }
}

fn data(bytes: Bytes) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
    Poll::Ready(Some(Ok(Frame::data(bytes))))
}

impl HttpBody for Encoding {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            let Some(encoder) = this.encoder.as_mut() else {
                return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
            };
            match this.inner.as_mut().poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(chunk) => {
                        let out = encoder.write(&chunk)?;
                        this.unflushed = true;
                        if !out.is_empty() {
                            return data(out);
                        }
                    }
                    Err(frame) => {
                        this.trailers = frame.into_trailers().ok();
                        if let Some(e) = this.encoder.take() {
                            return data(e.finish()?);
                        }
                    }
                },
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => {
                    if let Some(e) = this.encoder.take() {
                        let out = e.finish()?;
                        if !out.is_empty() {
                            return data(out);
                        }
                    }
                }
                Poll::Pending => {
                    if this.unflushed {
                        this.unflushed = false;
                        let out = encoder.flush()?;
                        if !out.is_empty() {
                            return data(out);
                        }
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.encoder.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
