//! Property tests for every reader of untrusted bytes: whatever comes in, an answer or an error
//! comes out, never a panic or an abort. `PROPTEST_CASES` raises the number of cases; the long
//! mode (`benches/fuzz_long.sh`) runs them for half an hour.

use proptest::prelude::*;

/// Cases per property: 256 by default, `PROPTEST_CASES` when set.
pub fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Text made of the characters these formats care about, so cases reach deep into parsers.
fn texty(alphabet: &'static str) -> impl Strategy<Value = String> {
    let chars: Vec<char> = alphabet.chars().collect();
    proptest::collection::vec(
        prop_oneof![
            4 => proptest::sample::select(chars),
            1 => any::<char>(),
        ],
        0..400,
    )
    .prop_map(|v| v.into_iter().collect())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn requirements_files_never_panic(text in texty("abc-_.=<>!~;[],()'\" \\\n\t#-rc--hash=sha256:0123456789python_version<\"3.8\"")) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.txt");
        std::fs::write(&path, &text).unwrap();
        let mut requirements = crate::requirements::Requirements::default();
        let _ = requirements.read_file(&path);
    }

    #[test]
    fn core_metadata_never_panics(text in texty("Metadata-Version: 2.1\nName: Requires-Dist: ; extra == \"x\"\nDynamic: Requires-Python: >=3.8 \t")) {
        let meta = crate::resolve::metadata::CoreMetadata::parse(text.as_bytes());
        let _ = meta.requires_dist_is_reliable();
        let _ = crate::resolve::metadata::parse_requires_txt(text.as_bytes());
    }

    #[test]
    fn setup_py_inspection_never_panics(text in texty("setup(setup_requires=['a', \"b\"]) REQS = [] if else: def f(x):\n    ()[]{}+-*\"'\\#")) {
        let _ = crate::resolve::setup_py::setup_requires(&text);
    }

    #[test]
    fn inspection_of_any_configuration_never_panics(
        pyproject in texty("[build-system]\nrequires = [\"a\", 'b']\nbuild-backend = \"x:y\"\nbackend-path = [\"..\", \".\"]\n{}=,"),
        cfg in texty("[options]\nsetup_requires =\n    a>=1\n; #"),
    ) {
        let mut files = crate::resolve::archive::SdistFiles::default();
        files.files.insert("pyproject.toml".into(), pyproject.into_bytes());
        files.files.insert("setup.cfg".into(), cfg.into_bytes());
        let _ = crate::resolve::inspect::inspect(&files);
    }

    #[test]
    fn wheel_reading_and_diffing_never_panic(
        a in proptest::collection::vec(any::<u8>(), 0..2048),
        entries in proptest::collection::vec(("[a-z./]{1,12}", proptest::collection::vec(any::<u8>(), 0..64)), 0..6),
        flip in any::<usize>(),
    ) {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        // Random bytes, and a real zip with one byte flipped.
        let garbage = dir.path().join("g.whl");
        std::fs::write(&garbage, &a).unwrap();
        let _ = crate::verify::wheel_diff::Wheel::read(&garbage);
        let good = dir.path().join("a.whl");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&good).unwrap());
        for (name, data) in &entries {
            if zip.start_file(name.as_str(), zip::write::SimpleFileOptions::default()).is_ok() {
                zip.write_all(data).unwrap();
            }
        }
        zip.finish().unwrap();
        let mut bytes = std::fs::read(&good).unwrap();
        if !bytes.is_empty() {
            let at = flip % bytes.len();
            bytes[at] ^= 0x5a;
        }
        let bad = dir.path().join("b.whl");
        std::fs::write(&bad, &bytes).unwrap();
        if let (Ok(wa), Ok(wb)) = (crate::verify::wheel_diff::Wheel::read(&good), crate::verify::wheel_diff::Wheel::read(&bad)) {
            let _ = crate::verify::wheel_diff::compare(&wa, &wb);
            let _ = wb.stabilized_sha256();
        }
    }

    #[test]
    fn a_written_zip_reads_back_as_written(
        entries in proptest::collection::btree_map("[a-z]{1,8}(/[a-z]{1,8}){0,2}", proptest::collection::vec(any::<u8>(), 0..300), 0..8),
        deflate in any::<bool>(),
    ) {
        let bytes = zip_of(&entries, deflate);
        let archive = crate::verify::wheel_zip::read(bytes.as_slice()).unwrap();
        prop_assert!(archive.anomalies.is_empty(), "{:?}", archive.anomalies);
        let mut buf = vec![0u8; 1 << 16];
        for (header, (name, data)) in archive.headers.iter().zip(&entries) {
            prop_assert_eq!(&header.name, name);
            let mut read = Vec::new();
            let (size, found) = crate::verify::wheel_zip::verify_entry(bytes.as_slice(), header, &mut buf, |c| read.extend_from_slice(c)).unwrap();
            prop_assert!(found.is_empty(), "{:?}", found);
            prop_assert_eq!(size, data.len() as u64);
            prop_assert_eq!(&read, data);
        }
    }

    /// The wheel reader behind `compare` on a real zip whose header fields are set to edge
    /// values, bytes flipped, or cut short: an answer or an error, never a panic, and never
    /// more data out of an entry than one byte past what it declares.
    #[test]
    fn the_wheel_reader_behind_compare_is_bounded_on_mutated_zips(
        entries in proptest::collection::btree_map("[a-z./]{1,10}", proptest::collection::vec(any::<u8>(), 0..200), 1..6),
        deflate in any::<bool>(),
        edits in proptest::collection::vec((any::<proptest::sample::Index>(), 0usize..46, prop_oneof![Just(0u64), Just(0xffff), Just(0xffff_ffff), Just(1), any::<u64>()], 0usize..3), 0..4),
        flips in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 0..3),
        cut in proptest::option::of(any::<proptest::sample::Index>()),
    ) {
        let mut bytes = zip_of(&entries, deflate);
        // Fields of the headers, at the places a signature says a header starts.
        let starts: Vec<usize> = bytes.windows(4).enumerate().filter(|(_, w)| w[..2] == *b"PK").map(|(i, _)| i).collect();
        for (which, field, value, width) in edits {
            let at = starts[which.index(starts.len())] + field;
            let width = [2, 4, 8][width];
            if at + width <= bytes.len() {
                bytes[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
            }
        }
        for (at, value) in flips {
            let at = at.index(bytes.len());
            bytes[at] ^= value;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        if let Ok(archive) = crate::verify::wheel_zip::read(bytes.as_slice()) {
            prop_assert!(archive.headers.len() as u64 <= crate::verify::wheel_zip::MAX_ENTRIES);
            let mut buf = vec![0u8; 1 << 16];
            for header in &archive.headers {
                prop_assert!(header.name.len() <= 3 * crate::verify::wheel_zip::MAX_NAME);
                let mut out = 0u64;
                if let Ok((size, _)) = crate::verify::wheel_zip::verify_entry(bytes.as_slice(), header, &mut buf, |c| out += c.len() as u64) {
                    prop_assert_eq!(size, out);
                    prop_assert!(size <= header.size.saturating_add(1));
                }
            }
        }
        let _ = crate::verify::wheel_zip::anomalies(bytes.as_slice());
        let _ = crate::verify::wheel_zip::duplicate_entries(&bytes);
        // And through files, as `compare` reads them, against the unmutated zip.
        let dir = tempfile::tempdir().unwrap();
        let (good, bad) = (dir.path().join("a.whl"), dir.path().join("b.whl"));
        std::fs::write(&good, zip_of(&entries, deflate)).unwrap();
        std::fs::write(&bad, &bytes).unwrap();
        if let (Ok(wa), Ok(wb)) = (crate::verify::wheel_diff::Wheel::read(&good), crate::verify::wheel_diff::Wheel::read(&bad)) {
            let _ = crate::verify::wheel_diff::compare(&wa, &wb);
            let _ = crate::verify::wheel_diff::compare(&wb, &wa);
            let _ = wb.stabilized_sha256();
        }
    }
}

/// A zip of these entries, stored or deflated.
fn zip_of(entries: &std::collections::BTreeMap<String, Vec<u8>>, deflate: bool) -> Vec<u8> {
    use std::io::Write;
    let method = if deflate {
        zip::CompressionMethod::Deflated
    } else {
        zip::CompressionMethod::Stored
    };
    let options = zip::write::SimpleFileOptions::default().compression_method(method);
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in entries {
        if zip.start_file(name.as_str(), options).is_ok() {
            zip.write_all(data).unwrap();
        }
    }
    zip.finish().unwrap().into_inner()
}

proptest! {
    #![proptest_config(config())]

    /// An index page is whatever a server sends: JSON and HTML, well formed or not, any bytes.
    /// Files that come out have a filename and a URL that parses.
    #[test]
    fn index_pages_never_panic(
        json in texty(r#"{"files":[{"filename":"a-1.0.tar.gz","url":"../../a-1.0.tar.gz#sha256=00","hashes":{"sha256":"ab"},"requires-python":">=3","yanked":true,"upload-time":"2020-01-01T00:00:00Z","size":1,"core-metadata":{"sha256":"0"}}],"meta":{}}[]{}:,"\ "#),
        html in texty("<html><a href=\"../x-1.0.tar.gz#sha256=00\" data-requires-python=\"&gt;=3\" data-yanked data-dist-info-metadata=\"sha256=0\">x-1.0.tar.gz</a></html>&;#"),
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        url in prop_oneof![Just("https://example.invalid/simple/a/"), Just("file:///tmp/a/"), Just("not a url")],
    ) {
        for (body, content_type) in [
            (json.into_bytes(), "application/vnd.pypi.simple.v1+json"),
            (html.into_bytes(), "text/html"),
            (bytes.clone(), "application/vnd.pypi.simple.v1+json"),
            (bytes, "text/html"),
        ] {
            let response = crate::http::Response {
                body,
                content_type: content_type.into(),
                url: url.into(),
            };
            if let Ok(files) = crate::resolve::index::simple::parse(&response) {
                for file in files {
                    prop_assert!(!file.filename.is_empty());
                    prop_assert!(url::Url::parse(&file.url).is_ok(), "{}", file.url);
                }
            }
        }
    }
}
