//! The HTTP endpoint on `[metrics] listen`: `GET /metrics` (the Prometheus text format) and
//! `GET /health` (`ok` while the daemon's loop answers). Written on tokio rather than with
//! hyper's server, whose feature would rebuild hyper and the whole AWS client stack above it,
//! for two GET routes. Bounded so a slow or hostile client cannot hurt the daemon: a request
//! head of at most [`MAX_HEAD`] bytes sent within [`HEAD_TIMEOUT`] (a silent connection is
//! closed then, freeing its slot), answered within [`TIMEOUT`], at most [`MAX_CONNECTIONS`] at
//! once (more are closed at once), one request per connection.

use super::{Metrics, Source};
use std::io::IoSlice;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Longest request head (request line and headers) read, in bytes.
const MAX_HEAD: usize = 8 * 1024;

/// Longest a client may take to send its request head, from accept: Prometheus sends it at
/// once, so a connection silent that long is closed rather than left holding a slot.
const HEAD_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest a connection may take, from accept to the last byte of the answer.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Most connections served at once.
const MAX_CONNECTIONS: usize = 16;

/// Serves `/metrics` and `/health` on `listener` until the daemon's loop stops.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, source: Source) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, most likely: wait for some to be freed.
                tracing::warn!("metrics: cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if source.to_loop.is_closed() {
            return;
        }
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            // Too many at once: closing this one costs nothing, unlike queueing it.
            drop(stream);
            continue;
        };
        let (metrics, source) = (Arc::clone(&metrics), source.clone());
        tokio::spawn(async move {
            let _ = tokio::time::timeout(TIMEOUT, answer(stream, &metrics, &source)).await;
            drop(slot);
        });
    }
}

/// Reads one request from `stream` and answers it.
async fn answer(mut stream: TcpStream, metrics: &Metrics, source: &Source) -> std::io::Result<()> {
    let Ok(head) = tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut stream)).await else {
        // Silent too long: closed without an answer.
        return Ok(());
    };
    let Some(head) = head? else {
        return respond(
            &mut stream,
            "400 Bad Request",
            "text/plain",
            b"bad request\n",
            false,
        )
        .await;
    };
    let (method, path) = match request_line(&head) {
        Some(line) => line,
        None => {
            return respond(
                &mut stream,
                "400 Bad Request",
                "text/plain",
                b"bad request\n",
                false,
            )
            .await
        }
    };
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        return respond(
            &mut stream,
            "405 Method Not Allowed",
            "text/plain",
            b"only GET\n",
            false,
        )
        .await;
    }
    match path {
        "/metrics" => match metrics.scrape(source).await {
            Some(answer) => {
                let content = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
                respond_parts(&mut stream, "200 OK", content, &answer.parts(), head_only).await
            }
            None => unavailable(&mut stream).await,
        },
        "/health" => match source.answers().await {
            true => respond(&mut stream, "200 OK", "text/plain", b"ok\n", head_only).await,
            false => unavailable(&mut stream).await,
        },
        _ => {
            respond(
                &mut stream,
                "404 Not Found",
                "text/plain",
                b"not found: try /metrics or /health\n",
                head_only,
            )
            .await
        }
    }
}

/// The answer while the daemon is stopping and its loop no longer answers.
async fn unavailable(stream: &mut TcpStream) -> std::io::Result<()> {
    respond(
        stream,
        "503 Service Unavailable",
        "text/plain",
        b"opsd is stopping\n",
        false,
    )
    .await
}

/// The request head, up to its blank line; `None` when it is longer than [`MAX_HEAD`] or the
/// client closed before finishing it.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = memchr::memmem::find(&head, b"\r\n\r\n") {
            head.truncate(end);
            return Ok(Some(String::from_utf8_lossy(&head).into_owned()));
        }
        if head.len() > MAX_HEAD {
            return Ok(None);
        }
    }
}

/// The method and path (without a query) of `head`'s request line, if it is one.
fn request_line(head: &str) -> Option<(&str, &str)> {
    let line = head.lines().next()?;
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !version.starts_with("HTTP/1.") {
        return None;
    }
    let path = target.split('?').next().unwrap_or(target);
    Some((method, path))
}

/// Writes a whole answer with `status`, and `body` unless `head_only`, then closes.
async fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &[u8],
    head_only: bool,
) -> std::io::Result<()> {
    respond_parts(stream, status, content_type, &[body], head_only).await
}

/// Writes a whole answer with `status`, and the body made of `parts` unless `head_only`
/// (written vectored, not joined first), then closes.
async fn respond_parts(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    parts: &[&[u8]],
    head_only: bool,
) -> std::io::Result<()> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len}\r\n\
         Connection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await?;
    if !head_only {
        write_all_vectored(stream, parts).await?;
    }
    stream.shutdown().await
}

/// Most slices given to one vectored write (Linux's `IOV_MAX`).
const MAX_SLICES: usize = 1024;

/// Writes every byte of `parts`, in order, with vectored writes of up to [`MAX_SLICES`].
async fn write_all_vectored(
    stream: &mut (impl AsyncWriteExt + Unpin),
    parts: &[&[u8]],
) -> std::io::Result<()> {
    for chunk in parts.chunks(MAX_SLICES) {
        let mut slices: Vec<IoSlice<'_>> = chunk.iter().map(|p| IoSlice::new(p)).collect();
        let mut left = &mut slices[..];
        IoSlice::advance_slices(&mut left, 0);
        while !left.is_empty() {
            let n = stream.write_vectored(left).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            IoSlice::advance_slices(&mut left, n);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{request_line, write_all_vectored, MAX_SLICES};
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn an_answer_of_many_pieces_larger_than_the_socket_buffer_arrives_whole_in_order() {
        let pieces: Vec<Vec<u8>> = (0..3 * MAX_SLICES + 5)
            .map(|i| {
                let len = if i % 7 == 0 { 0 } else { 1 + i % 3000 };
                vec![b'a' + (i % 26) as u8; len]
            })
            .collect();
        let expected = pieces.concat();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            stream.read_to_end(&mut got).await.unwrap();
            got
        });
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let parts: Vec<&[u8]> = pieces.iter().map(Vec::as_slice).collect();
        write_all_vectored(&mut stream, &parts).await.unwrap();
        drop(stream);
        let got = reader.await.unwrap();
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "the bytes arrived out of order");
    }

    #[test]
    fn the_request_line_gives_the_method_and_the_path_without_its_query() {
        assert_eq!(
            request_line("GET /metrics?x=1 HTTP/1.1\r\nHost: a"),
            Some(("GET", "/metrics"))
        );
        assert_eq!(
            request_line("HEAD /health HTTP/1.0"),
            Some(("HEAD", "/health"))
        );
        assert_eq!(request_line("GET /metrics"), None);
        assert_eq!(request_line("GET / HTTP/2 extra"), None);
        assert_eq!(request_line(""), None);
    }
}
