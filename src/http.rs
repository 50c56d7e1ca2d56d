//! HTTP with retries and backoff; every failure names the URL it was fetching. Nothing read from
//! a server is unbounded: pages are capped after decoding, downloads stream to a file in chunks
//! while they are hashed, and a body larger than its cap is an error, never an allocation.

use std::io::{Read, Seek, Write};
use std::path::Path;
use std::time::Duration;

/// Index pages larger than this (after decoding) are refused unless `--max-page-size` says
/// otherwise: PyPI's largest simple pages are a few MiB.
pub const DEFAULT_MAX_PAGE: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{url}: not found (HTTP 404)")]
    NotFound { url: String },
    #[error("{url}: unreachable after {attempts} attempts: {last}")]
    Unreachable {
        url: String,
        attempts: u32,
        last: String,
    },
    #[error("{url}: the server answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: the response is larger than {limit} bytes{what}\nhint: {hint}")]
    TooLarge {
        url: String,
        limit: u64,
        /// " after decompression" when the encoded body was within the limit.
        what: &'static str,
        hint: &'static str,
    },
    #[error(
        "{url}: the server sent the body with Content-Encoding `{encoding}`, which rewheel does not decode"
    )]
    Encoding { url: String, encoding: String },
    #[error("{url}: the body does not decode as Content-Encoding `{encoding}`: {message}")]
    Undecodable {
        url: String,
        encoding: String,
        message: String,
    },
    #[error("{url}: writing the download to {path}: {source}")]
    Write {
        url: String,
        path: String,
        source: std::io::Error,
    },
}

pub struct Response {
    pub body: Vec<u8>,
    pub content_type: String,
    /// The URL after redirects: relative links on the page resolve against it.
    pub url: String,
}

/// A body streamed into a temporary file, with what was learned while writing it.
pub struct Download {
    pub file: tempfile::NamedTempFile,
    pub sha256: crate::digest::Sha256,
    pub size: u64,
}

/// What a body may be, and what to say when it is more.
#[derive(Debug, Clone, Copy)]
pub struct Cap {
    pub bytes: u64,
    /// What to do about it, for the error's `hint:` line.
    pub hint: &'static str,
}

impl Cap {
    /// A file named by URL on the command line or in a plan, as large as a wheel the store
    /// takes.
    pub fn download() -> Self {
        Self {
            // The store's cap on a wheel (`build::job::MAX_WHEEL`), said here once more so
            // that fetching needs nothing of the build stage.
            bytes: 2 << 30,
            hint: "a file this large is not one rewheel takes",
        }
    }

    pub fn page(bytes: u64) -> Self {
        Self {
            bytes,
            hint: "an index page this large is not one rewheel reads; --max-page-size BYTES raises the limit",
        }
    }
}

/// Why reading a body stopped: the network (worth another attempt) or the body itself (not).
enum BodyError {
    Retry(String),
    Fatal(HttpError),
}

pub struct Http {
    /// Made on the first request: building it reads the system's certificates and starts a
    /// runtime thread, which a warm run answered from the cache never needs.
    client: std::sync::OnceLock<reqwest::blocking::Client>,
    attempts: u32,
    backoff: Duration,
}

impl Http {
    pub fn new(attempts: u32) -> Self {
        Self {
            client: std::sync::OnceLock::new(),
            attempts: attempts.max(1),
            backoff: Duration::from_millis(250),
        }
    }

    fn client(&self) -> &reqwest::blocking::Client {
        self.client.get_or_init(|| {
            reqwest::blocking::Client::builder()
                .user_agent(concat!("rewheel/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(Duration::from_secs(10))
                .timeout(Duration::from_secs(120))
                .build()
                .expect("the TLS backend is compiled in")
        })
    }

    /// GET a page into memory, at most `cap` bytes after decoding (gzip and deflate are
    /// decoded here, under the same cap: a server may compress whether asked or not).
    pub fn get(&self, url: &str, accept: &str, cap: Cap) -> Result<Response, HttpError> {
        self.with_retries(url, accept, |response| {
            let final_url = response.url().to_string();
            let content_type = header(&response, reqwest::header::CONTENT_TYPE);
            let encoding = header(&response, reqwest::header::CONTENT_ENCODING);
            check_length(&response, url, cap)?;
            let body = read_page(response, url, &encoding, cap)?;
            Ok(Response {
                body,
                content_type,
                url: final_url,
            })
        })
    }

    /// GET a file into a temporary file in `dir`, hashed as it is written; at most `cap`
    /// bytes. The bytes are kept as sent (a `Content-Encoding` is not undone): the hash the
    /// caller checks is of exactly what is on disk.
    pub fn download(&self, url: &str, dir: &Path, cap: Cap) -> Result<Download, HttpError> {
        let write = |source: std::io::Error| HttpError::Write {
            url: url.to_string(),
            path: dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(write)?;
        self.with_retries(url, "*/*", |response| {
            check_length(&response, url, cap)?;
            let file =
                tempfile::NamedTempFile::new_in(dir).map_err(|e| BodyError::Fatal(write(e)))?;
            stream_to(response, file, url, cap, &write)
        })
    }

    /// Send a GET, retrying connection failures, server errors and broken bodies with
    /// exponential backoff; `read` takes a successful response's body.
    fn with_retries<T>(
        &self,
        url: &str,
        accept: &str,
        mut read: impl FnMut(reqwest::blocking::Response) -> Result<T, BodyError>,
    ) -> Result<T, HttpError> {
        let mut last = String::new();
        for attempt in 0..self.attempts {
            if attempt > 0 {
                let wait = self.backoff * 2u32.pow(attempt - 1);
                tracing::debug!("retrying {url} in {wait:?} ({last})");
                std::thread::sleep(wait);
            }
            let response = match self.client().get(url).header("Accept", accept).send() {
                Ok(response) => response,
                Err(err) => {
                    last = error_chain(&err);
                    continue;
                }
            };
            let status = response.status();
            if status.as_u16() == 404 {
                return Err(HttpError::NotFound { url: url.into() });
            }
            if status.is_server_error() || status.as_u16() == 429 {
                last = format!("HTTP {status}");
                continue;
            }
            if !status.is_success() {
                return Err(HttpError::Status {
                    url: url.into(),
                    status: status.as_u16(),
                });
            }
            match read(response) {
                Ok(value) => return Ok(value),
                Err(BodyError::Retry(why)) => last = why,
                Err(BodyError::Fatal(err)) => return Err(err),
            }
        }
        Err(HttpError::Unreachable {
            url: url.into(),
            attempts: self.attempts,
            last,
        })
    }
}

fn header(response: &reqwest::blocking::Response, name: reqwest::header::HeaderName) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_string()
}

fn too_large(url: &str, cap: Cap, what: &'static str) -> BodyError {
    BodyError::Fatal(HttpError::TooLarge {
        url: url.to_string(),
        limit: cap.bytes,
        what,
        hint: cap.hint,
    })
}

/// A declared length over the cap fails before a byte is read.
fn check_length(
    response: &reqwest::blocking::Response,
    url: &str,
    cap: Cap,
) -> Result<(), BodyError> {
    match response.content_length() {
        Some(len) if len > cap.bytes => Err(too_large(url, cap, "")),
        _ => Ok(()),
    }
}

/// The body of a page, decoded, never more than `cap` bytes on either side of the decoder.
fn read_page(
    response: reqwest::blocking::Response,
    url: &str,
    encoding: &str,
    cap: Cap,
) -> Result<Vec<u8>, BodyError> {
    let raw = Capped {
        inner: response,
        left: cap.bytes,
    };
    let (reader, what): (Box<dyn Read>, &'static str) = match encoding.to_ascii_lowercase().as_str()
    {
        "" | "identity" => (Box::new(raw), ""),
        "gzip" | "x-gzip" => (
            Box::new(flate2::read::MultiGzDecoder::new(raw)),
            " after decompression",
        ),
        "deflate" => (
            Box::new(flate2::read::ZlibDecoder::new(raw)),
            " after decompression",
        ),
        other => {
            return Err(BodyError::Fatal(HttpError::Encoding {
                url: url.to_string(),
                encoding: other.to_string(),
            }));
        }
    };
    // Spooled to disk past a few MiB, and read into memory only once it is known to fit: a
    // body at the cap costs disk, not resident memory.
    let mut spool = tempfile::SpooledTempFile::new(SPOOL_IN_MEMORY);
    let mut buf = vec![0u8; 1 << 16];
    let mut reader = reader;
    let mut size: u64 = 0;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) => return Err(body_error(err, url, encoding, cap, what)),
        };
        size += n as u64;
        if size > cap.bytes {
            return Err(too_large(url, cap, what));
        }
        spool.write_all(&buf[..n]).map_err(|source| {
            BodyError::Fatal(HttpError::Write {
                url: url.to_string(),
                path: "a temporary file".into(),
                source,
            })
        })?;
    }
    let mut body = Vec::with_capacity(size as usize);
    spool
        .rewind()
        .and_then(|_| spool.read_to_end(&mut body))
        .map_err(|e| BodyError::Retry(e.to_string()))?;
    Ok(body)
}

/// Pages up to this size stay in memory while they arrive.
const SPOOL_IN_MEMORY: usize = 4 << 20;

/// Why reading a page's body failed, and whether another attempt could help.
fn body_error(
    err: std::io::Error,
    url: &str,
    encoding: &str,
    cap: Cap,
    what: &'static str,
) -> BodyError {
    match err.kind() {
        std::io::ErrorKind::FileTooLarge => too_large(url, cap, ""),
        // A decoder's refusal is the body's fault, not the network's: no second attempt.
        std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData if !what.is_empty() => {
            BodyError::Fatal(HttpError::Undecodable {
                url: url.to_string(),
                encoding: encoding.to_string(),
                message: err.to_string(),
            })
        }
        _ => BodyError::Retry(error_chain(&err)),
    }
}

/// Stream a body into `file` in chunks, hashing as it goes.
fn stream_to(
    mut response: reqwest::blocking::Response,
    mut file: tempfile::NamedTempFile,
    url: &str,
    cap: Cap,
    write: &dyn Fn(std::io::Error) -> HttpError,
) -> Result<Download, BodyError> {
    use crate::digest::Sha256;
    use sha2::Digest;
    let mut hasher = Sha256::hasher();
    let mut buf = vec![0u8; 1 << 16];
    let mut size: u64 = 0;
    loop {
        let n = match response.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(BodyError::Retry(error_chain(&err))),
        };
        size += n as u64;
        if size > cap.bytes {
            return Err(too_large(url, cap, ""));
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])
            .map_err(|e| BodyError::Fatal(write(e)))?;
    }
    file.flush().map_err(|e| BodyError::Fatal(write(e)))?;
    Ok(Download {
        file,
        sha256: Sha256::finish(hasher),
        size,
    })
}

/// The raw body, failing with `FileTooLarge` past `left` bytes: a compressed body is bounded
/// before the decoder, too.
struct Capped<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            return Err(std::io::ErrorKind::FileTooLarge.into());
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// reqwest's top-level message is vague ("error sending request"); the cause says what happened.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
