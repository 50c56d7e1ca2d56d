//! The simple repository API: PEP 691 JSON first, PEP 503 HTML as the fallback.

use super::file::{IndexError, IndexFile};
use crate::http::Response;
use jiff::Timestamp;
use serde::Deserialize;
use std::collections::HashMap;

pub const ACCEPT: &str = "application/vnd.pypi.simple.v1+json, \
    application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01";

pub fn parse(response: &Response) -> Result<Vec<IndexFile>, IndexError> {
    let base = url::Url::parse(&response.url).map_err(|err| bad(&response.url, err))?;
    if response.content_type.contains("json") {
        parse_json(&response.body, &base)
    } else {
        parse_html(&response.body, &base)
    }
}

fn bad(url: &str, err: impl std::fmt::Display) -> IndexError {
    IndexError::BadPage {
        url: url.to_string(),
        message: err.to_string(),
    }
}

#[derive(Deserialize)]
struct JsonPage {
    files: Vec<JsonFile>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct JsonFile {
    filename: String,
    url: String,
    #[serde(default)]
    hashes: HashMap<String, String>,
    #[serde(default)]
    requires_python: Option<String>,
    #[serde(default)]
    upload_time: Option<String>,
    /// `false`, `true` or a reason string.
    #[serde(default)]
    yanked: serde_json::Value,
    /// `false`, `true` or a table of hashes.
    #[serde(default)]
    core_metadata: serde_json::Value,
    /// The PEP 658 name that PEP 714 renamed; old indexes still send only this one.
    #[serde(default)]
    dist_info_metadata: serde_json::Value,
    /// PEP 700; a size that does not fit is no size.
    #[serde(default, deserialize_with = "lenient_size")]
    size: Option<u64>,
}

fn lenient_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(serde_json::Value::deserialize(d)?.as_u64())
}

/// PEP 691 flags are `true`, a non-empty string or a table when set.
fn flag_set(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Bool(b) => *b,
        serde_json::Value::String(_) | serde_json::Value::Object(_) => true,
        _ => false,
    }
}

fn parse_json(body: &[u8], base: &url::Url) -> Result<Vec<IndexFile>, IndexError> {
    let page: JsonPage = serde_json::from_slice(body).map_err(|err| bad(base.as_str(), err))?;
    page.files
        .into_iter()
        .map(|file| {
            let url = base
                .join(&file.url)
                .map_err(|err| bad(base.as_str(), err))?;
            let upload_time =
                match file.upload_time {
                    Some(text) => Some(text.parse::<Timestamp>().map_err(|err| {
                        bad(base.as_str(), format!("upload-time `{text}`: {err}"))
                    })?),
                    None => None,
                };
            Ok(IndexFile {
                filename: file.filename,
                url: strip_fragment(url),
                sha256: file.hashes.get("sha256").map(|h| h.to_ascii_lowercase()),
                requires_python: file.requires_python.filter(|s| !s.trim().is_empty()),
                upload_time,
                yanked: flag_set(&file.yanked),
                core_metadata: flag_set(&file.core_metadata) || flag_set(&file.dist_info_metadata),
                size: file.size,
            })
        })
        .collect()
}

fn parse_html(body: &[u8], base: &url::Url) -> Result<Vec<IndexFile>, IndexError> {
    let text = String::from_utf8_lossy(body);
    let dom = tl::parse(&text, tl::ParserOptions::default()).map_err(|e| bad(base.as_str(), e))?;
    let parser = dom.parser();
    let mut base = base.clone();
    // A <base href> changes what relative links resolve against.
    if let Some(tag) = dom
        .query_selector("base")
        .and_then(|mut it| it.next())
        .and_then(|h| h.get(parser))
        .and_then(|n| n.as_tag())
        && let Some(href) = attr(tag, "href")
        && let Ok(joined) = base.join(&href)
    {
        base = joined;
    }
    let mut files = Vec::new();
    for handle in dom.query_selector("a").into_iter().flatten() {
        let Some(tag) = handle.get(parser).and_then(|n| n.as_tag()) else {
            continue;
        };
        let Some(href) = attr(tag, "href") else {
            continue;
        };
        let url = base.join(&href).map_err(|err| bad(base.as_str(), err))?;
        let filename = url
            .path_segments()
            .and_then(|mut s| s.next_back())
            .map(percent_decode)
            .unwrap_or_default();
        let sha256 = url
            .fragment()
            .and_then(|f| f.strip_prefix("sha256="))
            .map(|h| h.to_ascii_lowercase());
        let metadata =
            attr(tag, "data-core-metadata").or_else(|| attr(tag, "data-dist-info-metadata"));
        files.push(IndexFile {
            filename,
            url: strip_fragment(url),
            sha256,
            requires_python: attr(tag, "data-requires-python").filter(|s| !s.trim().is_empty()),
            upload_time: None,
            yanked: has_attr(tag, "data-yanked"),
            core_metadata: metadata.is_some_and(|m| m != "false"),
            size: None,
        });
    }
    Ok(files)
}

fn strip_fragment(mut url: url::Url) -> String {
    url.set_fragment(None);
    url.to_string()
}

fn has_attr(tag: &tl::HTMLTag, name: &str) -> bool {
    tag.attributes().get(name).is_some()
}

fn attr(tag: &tl::HTMLTag, name: &str) -> Option<String> {
    let value = tag.attributes().get(name)??;
    Some(unescape(&value.as_utf8_str()))
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&amp;", "&")
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(body: &str, content_type: &str) -> Response {
        Response {
            body: body.as_bytes().to_vec(),
            content_type: content_type.into(),
            url: "https://example.org/simple/six/".into(),
        }
    }

    #[test]
    fn json_pages_resolve_relative_urls_and_read_pep700_times() {
        let page = r#"{"meta":{"api-version":"1.1"},"name":"six","files":[
            {"filename":"six-1.16.0.tar.gz","url":"../../packages/ab/six-1.16.0.tar.gz",
             "hashes":{"sha256":"ABCD"},"requires-python":">=2.7, !=3.0.*",
             "upload-time":"2021-05-05T14:18:18.379000Z","yanked":false,
             "dist-info-metadata":{"sha256":"x"}},
            {"filename":"six-1.15.0.tar.gz","url":"https://files.example.org/six-1.15.0.tar.gz",
             "hashes":{},"yanked":"broken"}]}"#;
        let files = parse(&response(page, "application/vnd.pypi.simple.v1+json")).unwrap();
        assert_eq!(
            files[0].url,
            "https://example.org/packages/ab/six-1.16.0.tar.gz"
        );
        assert_eq!(files[0].sha256.as_deref(), Some("abcd"));
        assert_eq!(
            files[0].upload_time.unwrap().to_string(),
            "2021-05-05T14:18:18.379Z"
        );
        assert!(files[0].core_metadata && !files[0].yanked);
        assert!(files[1].yanked && !files[1].core_metadata);
    }

    #[test]
    fn html_pages_carry_hash_fragments_and_escaped_attributes() {
        let page = r#"<html><body>
            <a href="../../packages/six-1.16.0.tar.gz#sha256=abcd" data-requires-python="&gt;=2.7">six-1.16.0.tar.gz</a>
            <a href="/x/six-1.0.tar.gz" data-yanked="">six-1.0.tar.gz</a>
            </body></html>"#;
        let files = parse(&response(page, "text/html")).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(
            files[0].url,
            "https://example.org/packages/six-1.16.0.tar.gz"
        );
        assert_eq!(files[0].filename, "six-1.16.0.tar.gz");
        assert_eq!(files[0].sha256.as_deref(), Some("abcd"));
        assert_eq!(files[0].requires_python.as_deref(), Some(">=2.7"));
        assert!(files[1].yanked);
    }
}
