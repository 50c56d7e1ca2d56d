//! HTTP with retries and backoff; every failure names the URL it was fetching.

use std::time::Duration;

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
}

pub struct Response {
    pub body: Vec<u8>,
    pub content_type: String,
    /// The URL after redirects: relative links on the page resolve against it.
    pub url: String,
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

    /// GET a URL, retrying connection failures and server errors with exponential backoff.
    pub fn get(&self, url: &str, accept: &str) -> Result<Response, HttpError> {
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
            let final_url = response.url().to_string();
            let content_type = response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            match response.bytes() {
                Ok(body) => {
                    return Ok(Response {
                        body: body.to_vec(),
                        content_type,
                        url: final_url,
                    });
                }
                Err(err) => last = error_chain(&err),
            }
        }
        Err(HttpError::Unreachable {
            url: url.into(),
            attempts: self.attempts,
            last,
        })
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
