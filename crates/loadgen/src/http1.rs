//! A minimal HTTP/1.1 keep-alive client for the flash sale's hot path: one
//! connection per buyer (as each phone has its own), a request written in
//! one piece, the response read to its `Content-Length`. A general client
//! costs tens of microseconds per request, which on a shared 2-core machine
//! would come straight out of the server's share.

use crate::error::{Error, Result};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text (lossy).
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }
}

/// One keep-alive connection.
pub struct Conn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

/// What a complete response in `buf` looks like, if it is complete:
/// (status, header length, body length, server closes afterwards).
pub fn parse_head(buf: &[u8]) -> Result<Option<(u16, usize, usize, bool)>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut res = httparse::Response::new(&mut headers);
    let head = match res.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(Error::Invalid(format!("bad HTTP response: {e}"))),
    };
    let mut len = 0usize;
    let mut close = false;
    for h in res.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            len = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| Error::Invalid("bad Content-Length".into()))?;
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(Error::Invalid(
                "chunked responses are not supported by the load generator's client".into(),
            ));
        } else if h.name.eq_ignore_ascii_case("connection")
            && h.value.eq_ignore_ascii_case(b"close")
        {
            close = true;
        }
    }
    let status = res.code.unwrap_or(0);
    Ok(Some((status, head, len, close)))
}

impl Conn {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            addr,
            stream: Some(stream),
            buf: Vec::with_capacity(4096),
        })
    }

    /// Sends `request` (a complete HTTP/1.1 request) and reads the answer.
    /// If the server had closed the idle connection, reconnects and sends it
    /// once more (the requests here carry an `Idempotency-Key` or are reads).
    pub async fn send(&mut self, request: &[u8]) -> Result<Response> {
        match self.try_send(request).await {
            Ok(r) => Ok(r),
            Err(Error::Io(e)) if self.buf.is_empty() => {
                tracing::debug!(error = %e, "connection lost before an answer; reconnecting");
                let stream = TcpStream::connect(self.addr).await?;
                stream.set_nodelay(true)?;
                self.stream = Some(stream);
                self.try_send(request).await
            }
            Err(e) => Err(e),
        }
    }

    async fn try_send(&mut self, request: &[u8]) -> Result<Response> {
        self.buf.clear();
        if self.stream.is_none() {
            let stream = TcpStream::connect(self.addr).await?;
            stream.set_nodelay(true)?;
            self.stream = Some(stream);
        }
        let stream = self
            .stream
            .as_mut()
            .ok_or_else(|| Error::Invalid("no stream".into()))?;
        stream.write_all(request).await?;
        loop {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                self.stream = None;
                return Err(Error::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed",
                )));
            }
            self.buf.extend_from_slice(&chunk[..n]);
            if let Some((status, head, len, close)) = parse_head(&self.buf)?
                && self.buf.len() >= head + len
            {
                let body = self.buf[head..head + len].to_vec();
                self.buf.clear();
                if close {
                    self.stream = None;
                }
                return Ok(Response { status, body });
            }
        }
    }
}

/// A request with a JSON body (or none) and extra header lines.
pub fn request(
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (k, v) in headers {
        r.push_str(k);
        r.push_str(": ");
        r.push_str(v);
        r.push_str("\r\n");
    }
    match body {
        Some(b) => {
            r.push_str("Content-Type: application/json\r\n");
            r.push_str(&format!("Content-Length: {}\r\n\r\n", b.len()));
            r.push_str(b);
        }
        None => r.push_str("\r\n"),
    }
    r.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_and_partial_heads() {
        let full = b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: 5\r\n\r\nhello";
        let (status, head, len, close) = parse_head(full).unwrap().unwrap();
        assert_eq!((status, len, close), (201, 5, false));
        assert_eq!(&full[head..head + len], b"hello");
        assert!(
            parse_head(b"HTTP/1.1 201 Created\r\ncontent-le")
                .unwrap()
                .is_none()
        );
        let closing =
            b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        assert!(parse_head(closing).unwrap().unwrap().3);
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").is_err());
    }

    #[test]
    fn requests_are_well_formed() {
        let r = request(
            "POST",
            "h:1",
            "/x",
            &[("Idempotency-Key", "k1")],
            Some("{}"),
        );
        assert_eq!(
            String::from_utf8(r).unwrap(),
            "POST /x HTTP/1.1\r\nHost: h:1\r\nIdempotency-Key: k1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        );
    }

    #[tokio::test]
    async fn talks_to_a_server_and_survives_a_closed_idle_connection() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            // First connection: one answer, then the server closes it.
            for _ in 0..2 {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut b = [0u8; 1024];
                let _ = s.read(&mut b).await.unwrap();
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await
                    .unwrap();
                drop(s);
            }
        });
        let mut c = Conn::connect(addr).await.unwrap();
        let req = request("GET", "x", "/", &[], None);
        let r = c.send(&req).await.unwrap();
        assert_eq!((r.status, r.text().as_ref()), (200, "ok"));
        let r = c.send(&req).await.unwrap();
        assert_eq!(r.status, 200, "reconnected after the server closed");
    }
}
