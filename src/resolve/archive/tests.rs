use super::*;

/// A tar.gz built entry by entry, links included, as an attacker would write it.
struct TarMaker {
    builder: tar::Builder<flate2::write::GzEncoder<std::fs::File>>,
}

impl TarMaker {
    fn new(path: &Path) -> Self {
        let gz = flate2::write::GzEncoder::new(
            std::fs::File::create(path).unwrap(),
            flate2::Compression::fast(),
        );
        Self {
            builder: tar::Builder::new(gz),
        }
    }

    fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        self.builder.append_data(&mut header, name, data).unwrap();
        self
    }

    fn link(&mut self, name: &str, target: &str, kind: tar::EntryType) -> &mut Self {
        let mut header = tar::Header::new_gnu();
        header.set_size(0);
        header.set_mode(0o777);
        header.set_entry_type(kind);
        self.builder.append_link(&mut header, name, target).unwrap();
        self
    }

    fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.link(name, target, tar::EntryType::Symlink)
    }

    fn finish(self) {
        self.builder.into_inner().unwrap().finish().unwrap();
    }
}

fn limits() -> Limits {
    Limits::default()
}

/// The chain from the issue: each link looks inside, together they leave.
fn chained_escape(tar: &mut TarMaker, depth: usize) -> String {
    tar.file(
        "evil-1.0/PKG-INFO",
        b"Metadata-Version: 2.1\nName: evil\nVersion: 1.0\n",
    );
    tar.symlink("evil-1.0/x", ".");
    let deep = vec!["x"; depth].join("/");
    let up = vec![".."; depth].join("/");
    tar.symlink(&format!("evil-1.0/{deep}/y"), &up);
    "evil-1.0/y".to_string()
}

#[test]
fn a_chain_of_links_that_each_look_inside_cannot_write_outside() {
    let dir = tempfile::tempdir().unwrap();
    let sentinel = dir.path().join("sentinel");
    std::fs::create_dir(&sentinel).unwrap();
    let path = dir.path().join("evil-1.0.tar.gz");
    let mut tar = TarMaker::new(&path);
    let y = chained_escape(&mut tar, 20);
    let escape = format!(
        "{y}/{}",
        sentinel
            .join("pwned")
            .display()
            .to_string()
            .trim_start_matches('/')
    );
    tar.file(&escape, b"owned");
    tar.finish();
    let dest = dir.path().join("job/src");
    let err = extract_sdist(&path, &dest, limits(), 0o022).unwrap_err();
    assert!(matches!(err, ArchiveError::Unsafe { .. }), "{err}");
    assert!(
        err.to_string().contains("written through the link"),
        "{err}"
    );
    assert!(err.is_input());
    assert_eq!(std::fs::read_dir(&sentinel).unwrap().count(), 0);
    // resolve reads the same archive and gives the same answer.
    let read = read_sdist(&path, limits()).unwrap_err();
    assert_eq!(read.to_string(), err.to_string());
}

#[test]
fn a_link_redirected_by_a_later_link_is_caught_once_the_tree_is_complete() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("evil-1.0.tar.gz");
    let mut tar = TarMaker::new(&path);
    tar.file("evil-1.0/PKG-INFO", b"Name: evil\n");
    tar.symlink("evil-1.0/d/a", "../x/..");
    // Alone, x -> `..` is the unpacking folder itself (inside); but it turns `a`, checked
    // when x did not exist yet, into the folder's parent.
    tar.symlink("evil-1.0/x", "..");
    tar.finish();
    let err = extract_sdist(&path, &dir.path().join("out"), limits(), 0o022).unwrap_err();
    assert!(
        err.to_string().contains("links outside the archive"),
        "{err}"
    );
}

#[test]
fn a_hard_link_copies_only_a_regular_file_of_the_same_archive() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("evil-1.0.tar.gz");
    let mut tar = TarMaker::new(&path);
    tar.symlink("evil-1.0/x", "..");
    tar.link(
        "evil-1.0/hostname",
        "evil-1.0/x/../../../../../etc/hostname",
        tar::EntryType::Link,
    );
    tar.link(
        "evil-1.0/hostname2",
        "evil-1.0/x/x/etc/hostname",
        tar::EntryType::Link,
    );
    tar.finish();
    let err = extract_sdist(&path, &dir.path().join("out"), limits(), 0o022).unwrap_err();
    assert!(
        err.to_string()
            .contains("not a regular file of this archive"),
        "{err}"
    );
    assert!(!dir.path().join("out/evil-1.0/hostname").exists());

    let ok = dir.path().join("fine-1.0.tar.gz");
    let mut tar = TarMaker::new(&ok);
    tar.file("fine-1.0/a.txt", b"same bytes");
    tar.link("fine-1.0/b.txt", "fine-1.0/a.txt", tar::EntryType::Link);
    tar.finish();
    let top = extract_sdist(&ok, &dir.path().join("ok"), limits(), 0o022).unwrap();
    assert_eq!(std::fs::read(top.join("b.txt")).unwrap(), b"same bytes");
}

#[test]
fn links_that_stay_inside_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fine-1.0.tar.gz");
    let mut tar = TarMaker::new(&path);
    tar.file("fine-1.0/src/real.py", b"x = 1\n");
    tar.symlink("fine-1.0/alias.py", "src/real.py");
    tar.symlink("fine-1.0/src/self", ".");
    tar.symlink("fine-1.0/docs", "src/self/..");
    tar.finish();
    let top = extract_sdist(&path, &dir.path().join("out"), limits(), 0o022).unwrap();
    assert_eq!(std::fs::read(top.join("alias.py")).unwrap(), b"x = 1\n");
    assert!(read_sdist(&path, limits()).is_ok());
}

#[test]
fn a_configuration_file_that_is_a_link_or_too_large_is_refused_by_both_readers() {
    let dir = tempfile::tempdir().unwrap();
    let linked = dir.path().join("evil-1.0.tar.gz");
    let mut tar = TarMaker::new(&linked);
    tar.file("evil-1.0/other.toml", b"[build-system]\nrequires = []\n");
    tar.symlink("evil-1.0/pyproject.toml", "other.toml");
    tar.finish();
    let read = read_sdist(&linked, limits()).unwrap_err().to_string();
    let unpacked = extract_sdist(&linked, &dir.path().join("a"), limits(), 0o022)
        .unwrap_err()
        .to_string();
    assert_eq!(read, unpacked);
    assert!(read.contains("must be regular files"), "{read}");

    let big = dir.path().join("big-1.0.tar.gz");
    let mut tar = TarMaker::new(&big);
    let mut text = b"[build-system]\nrequires = []\n#".to_vec();
    text.resize(MAX_WANTED as usize + 10, b'x');
    tar.file("big-1.0/pyproject.toml", &text);
    tar.finish();
    let read = read_sdist(&big, limits()).unwrap_err();
    assert!(
        matches!(read, ArchiveError::ConfigTooLarge { .. }),
        "{read}"
    );
    let unpacked = extract_sdist(&big, &dir.path().join("b"), limits(), 0o022).unwrap_err();
    assert_eq!(read.to_string(), unpacked.to_string());
}

#[test]
fn long_name_headers_count_toward_the_limits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bomb-1.0.tar.gz");
    // A GNU long-name record of 8 MiB before one tiny file: the tar reader would hold it all.
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&path).unwrap(),
        flate2::Compression::best(),
    );
    let mut raw = tar::Builder::new(gz);
    let mut header = tar::Header::new_gnu();
    let long = vec![b'a'; 8 << 20];
    header.set_size(long.len() as u64);
    header.set_entry_type(tar::EntryType::GNULongName);
    header.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
    header.set_cksum();
    raw.append(&header, long.as_slice()).unwrap();
    let mut header = tar::Header::new_gnu();
    header.set_size(1);
    header.set_path("bomb-1.0/short").unwrap();
    header.set_cksum();
    raw.append(&header, &b"x"[..]).unwrap();
    raw.into_inner().unwrap().finish().unwrap();
    let err = read_sdist(&path, limits()).unwrap_err();
    assert!(matches!(err, ArchiveError::HugeHeaders { .. }), "{err}");
    let small = Limits {
        max_unpacked: 1 << 20,
        ..limits()
    };
    assert!(read_sdist(&path, small).is_err());
}

#[test]
fn a_zip_link_chain_is_refused_as_well() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let sentinel = dir.path().join("sentinel");
    std::fs::create_dir(&sentinel).unwrap();
    let path = dir.path().join("evil-1.0.zip");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let options = zip::write::SimpleFileOptions::default();
    zip.start_file("evil-1.0/PKG-INFO", options).unwrap();
    zip.write_all(b"Name: evil\n").unwrap();
    zip.add_symlink("evil-1.0/x", ".", options).unwrap();
    let deep = vec!["x"; 20].join("/");
    zip.add_symlink(
        format!("evil-1.0/{deep}/y"),
        vec![".."; 20].join("/"),
        options,
    )
    .unwrap();
    let target = sentinel.join("pwned").display().to_string();
    zip.start_file(
        format!("evil-1.0/y/{}", target.trim_start_matches('/')),
        options,
    )
    .unwrap();
    zip.write_all(b"owned").unwrap();
    zip.finish().unwrap();
    let err = extract_sdist(&path, &dir.path().join("out"), limits(), 0o022).unwrap_err();
    assert!(
        err.to_string().contains("written through the link"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(&sentinel).unwrap().count(), 0);
}

#[test]
fn links_in_a_loop_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("loop-1.0.tar.gz");
    let mut tar = TarMaker::new(&path);
    tar.symlink("loop-1.0/a", "b/c");
    tar.symlink("loop-1.0/b", "a/c");
    tar.finish();
    let err = read_sdist(&path, limits()).unwrap_err();
    assert!(err.to_string().contains("loop"), "{err}");
}

#[test]
fn a_later_copy_of_a_file_is_the_one_read_as_it_is_the_one_unpacked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("twice-1.0.tar.gz");
    let mut tar = TarMaker::new(&path);
    tar.file(
        "twice-1.0/pyproject.toml",
        b"[build-system]\nrequires = [\"first\"]\n",
    );
    tar.file(
        "twice-1.0/pyproject.toml",
        b"[build-system]\nrequires = [\"second\"]\n",
    );
    tar.finish();
    let read = read_sdist(&path, Limits::default()).unwrap();
    assert!(String::from_utf8_lossy(read.get("pyproject.toml").unwrap()).contains("second"));
    let top = extract_sdist(&path, &dir.path().join("out"), Limits::default(), 0o022).unwrap();
    assert!(
        std::fs::read_to_string(top.join("pyproject.toml"))
            .unwrap()
            .contains("second")
    );
}

/// A tar whose one entry is `depth` components deep, its name in a GNU long-name record.
fn deep_tar(path: &Path, depth: usize) {
    let mut tar = TarMaker::new(path);
    let name = format!("deep-1.0/{}f", "a/".repeat(depth - 2));
    tar.file(&name, b"x");
    tar.finish();
}

fn deep_zip(path: &Path, depth: usize) {
    use std::io::Write as _;
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let options = zip::write::SimpleFileOptions::default();
    zip.start_file(format!("deep-1.0/{}f", "a/".repeat(depth - 2)), options)
        .unwrap();
    zip.write_all(b"x").unwrap();
    zip.finish().unwrap();
}

#[test]
fn a_path_deeper_or_longer_than_pip_could_unpack_is_refused_by_both_readers_at_once() {
    let dir = tempfile::tempdir().unwrap();
    for (name, make) in [
        ("deep-1.0.tar.gz", deep_tar as fn(&Path, usize)),
        ("deep-1.0.zip", deep_zip),
    ] {
        let path = dir.path().join(name);
        // 30,000 components: the case that grew memory with the square of the depth.
        make(&path, 30_000);
        let started = std::time::Instant::now();
        let read = read_sdist(&path, limits()).unwrap_err();
        let unpacked = extract_sdist(&path, &dir.path().join("out"), limits(), 0o022).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(read.to_string(), unpacked.to_string());
        let message = read.to_string();
        assert!(
            message.contains("longer than pip could unpack"),
            "{message}"
        );
        assert!(
            message.contains("the limit is 4095 bytes and 256 components"),
            "{message}"
        );
        // The entry is named, cut short.
        assert!(message.contains("`deep-1.0/a/a/"), "{message}");
        assert!(message.len() < 600, "{message}");
        assert!(read.is_input());

        // Short names, too many of them: the depth limit.
        make(&path, 300);
        let message = read_sdist(&path, limits()).unwrap_err().to_string();
        assert!(message.contains("in 300 components"), "{message}");
        // At the limit it unpacks, and both readers agree.
        make(&path, MAX_PATH_DEPTH);
        assert!(read_sdist(&path, limits()).is_ok());
        let top = extract_sdist(
            &path,
            &dir.path().join(format!("ok-{name}")),
            limits(),
            0o022,
        )
        .unwrap();
        let deepest = top.join(format!("{}f", "a/".repeat(MAX_PATH_DEPTH - 2)));
        assert_eq!(std::fs::read(deepest).unwrap(), b"x");
    }
}

#[test]
fn a_name_or_link_target_the_kernel_would_refuse_is_refused_by_both_readers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long-1.0.tar.gz");
    let mut tar = TarMaker::new(&path);
    tar.file(&format!("long-1.0/{}", "n".repeat(256)), b"x");
    tar.finish();
    let read = read_sdist(&path, limits()).unwrap_err().to_string();
    assert!(read.contains("has a name of 256 bytes"), "{read}");
    let unpacked = extract_sdist(&path, &dir.path().join("a"), limits(), 0o022).unwrap_err();
    assert_eq!(read, unpacked.to_string());

    let mut tar = TarMaker::new(&path);
    tar.file("long-1.0/PKG-INFO", b"Name: long\n");
    tar.symlink("long-1.0/l", &"a/".repeat(2100));
    tar.finish();
    let read = read_sdist(&path, limits()).unwrap_err().to_string();
    assert!(read.contains("is a link to a path of 4200 bytes"), "{read}");
    let unpacked = extract_sdist(&path, &dir.path().join("b"), limits(), 0o022).unwrap_err();
    assert_eq!(read, unpacked.to_string());
}

#[test]
fn a_hard_linked_pyproject_is_read_as_the_file_it_copies_as_it_is_unpacked() {
    let dir = tempfile::tempdir().unwrap();
    let text = b"[build-system]\nrequires = []\nbuild-backend = \"other\"\n";
    for first_wanted in [false, true] {
        let path = dir.path().join("hard-1.0.tar.gz");
        let mut tar = TarMaker::new(&path);
        // The source's bytes go by under a name nobody reads (or one that is read, and later
        // replaced): the model still knows what pyproject.toml holds.
        let source = if first_wanted {
            "hard-1.0/setup.cfg"
        } else {
            "hard-1.0/data/build.toml"
        };
        tar.file(source, text);
        tar.link("hard-1.0/pyproject.toml", source, tar::EntryType::Link);
        if first_wanted {
            tar.file("hard-1.0/setup.cfg", b"[metadata]\nname = hard\n");
        }
        tar.finish();
        let read = read_sdist(&path, limits()).unwrap();
        let out = dir.path().join(format!("out-{first_wanted}"));
        let top = extract_sdist(&path, &out, limits(), 0o022).unwrap();
        let unpacked = std::fs::read(top.join("pyproject.toml")).unwrap();
        assert_eq!(read.get("pyproject.toml"), Some(unpacked.as_slice()));
        assert_eq!(unpacked, text);
        if first_wanted {
            assert_eq!(
                read.get("setup.cfg"),
                Some(std::fs::read(top.join("setup.cfg")).unwrap().as_slice())
            );
        }
    }
}

#[test]
fn an_archive_without_one_top_folder_is_refused_by_both_readers() {
    let dir = tempfile::tempdir().unwrap();
    let two = dir.path().join("two-1.0.tar.gz");
    let mut tar = TarMaker::new(&two);
    tar.file("two-1.0/pyproject.toml", b"[build-system]\nrequires = []\n");
    tar.file(
        "other/pyproject.toml",
        b"[build-system]\nrequires = []\nbuild-backend = \"evil\"\n",
    );
    tar.finish();
    let read = read_sdist(&two, limits()).unwrap_err().to_string();
    assert!(
        read.contains("entry `other/pyproject.toml` is outside the top folder `two-1.0`"),
        "{read}"
    );
    let unpacked = extract_sdist(&two, &dir.path().join("a"), limits(), 0o022).unwrap_err();
    assert_eq!(read, unpacked.to_string());

    // A lone file at the root, and nothing at all: no folder to build in.
    let lone = dir.path().join("lone-1.0.tar.gz");
    let mut tar = TarMaker::new(&lone);
    tar.file("pyproject.toml", b"[build-system]\nrequires = []\n");
    tar.finish();
    let read = read_sdist(&lone, limits()).unwrap_err().to_string();
    assert!(read.contains("is alone at the archive's root"), "{read}");
    let unpacked = extract_sdist(&lone, &dir.path().join("b"), limits(), 0o022).unwrap_err();
    assert_eq!(read, unpacked.to_string());
    let empty = dir.path().join("empty-1.0.tar.gz");
    TarMaker::new(&empty).finish();
    let read = read_sdist(&empty, limits()).unwrap_err().to_string();
    assert!(read.contains("holds no files"), "{read}");
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        File(Vec<u8>, Vec<u8>),
        Symlink(Vec<u8>, Vec<u8>),
        Hard(Vec<u8>, Vec<u8>),
        Dir(Vec<u8>),
    }

    fn name() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![
                Just(b"a".to_vec()),
                Just(b"..".to_vec()),
                Just(b".".to_vec()),
                Just(b"x".to_vec()),
                Just(b"pyproject.toml".to_vec()),
                Just(b"/".to_vec())
            ],
            1..6,
        )
        .prop_map(|parts| parts.join(&b'/'))
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (name(), proptest::collection::vec(any::<u8>(), 0..16))
                .prop_map(|(n, d)| Op::File(n, d)),
            (name(), name()).prop_map(|(n, t)| Op::Symlink(n, t)),
            (name(), name()).prop_map(|(n, t)| Op::Hard(n, t)),
            name().prop_map(Op::Dir),
        ]
    }

    fn raw_header(name: &[u8], kind: tar::EntryType, size: u64, link: &[u8]) -> tar::Header {
        let mut header = tar::Header::new_old();
        let old = header.as_old_mut();
        let n = name.len().min(99);
        old.name[..n].copy_from_slice(&name[..n]);
        let l = link.len().min(99);
        old.linkname[..l].copy_from_slice(&link[..l]);
        header.set_size(size);
        header.set_mode(0o755);
        header.set_entry_type(kind);
        header.set_cksum();
        header
    }

    proptest! {
        #![proptest_config(crate::proptests::config())]
        /// Whatever an archive holds, unpacking writes nothing outside its folder and never
        /// panics; and resolve's reader agrees with the unpacker on accepting it.
        #[test]
        fn nothing_lands_outside(ops in proptest::collection::vec(op(), 1..12)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("p-1.0.tar");
            let mut builder = tar::Builder::new(std::fs::File::create(&path).unwrap());
            for op in &ops {
                let prefixed = |n: &[u8]| [b"p-1.0/".as_slice(), n].concat();
                match op {
                    Op::File(n, d) => { let h = raw_header(&prefixed(n), tar::EntryType::Regular, d.len() as u64, b""); builder.append(&h, d.as_slice()).unwrap(); }
                    Op::Dir(n) => { let h = raw_header(&prefixed(n), tar::EntryType::Directory, 0, b""); builder.append(&h, std::io::empty()).unwrap(); }
                    Op::Symlink(n, t) => { let h = raw_header(&prefixed(n), tar::EntryType::Symlink, 0, t); builder.append(&h, std::io::empty()).unwrap(); }
                    Op::Hard(n, t) => { let h = raw_header(&prefixed(n), tar::EntryType::Link, 0, &prefixed(t)); builder.append(&h, std::io::empty()).unwrap(); }
                }
            }
            builder.into_inner().unwrap();
            let jail = dir.path().join("jail");
            std::fs::create_dir(&jail).unwrap();
            let unpacked = extract_sdist(&path, &jail.join("src"), limits(), 0o022);
            let read = read_sdist(&path, limits());
            match (&unpacked, &read) {
                (Ok(top), Ok(read)) => {
                    // What resolve reads is what the job finds on disk, file by file.
                    let path = top.join("pyproject.toml");
                    let on_disk = std::fs::symlink_metadata(&path)
                        .ok()
                        .filter(|m| m.is_file())
                        .map(|_| std::fs::read(&path).unwrap());
                    prop_assert_eq!(read.get("pyproject.toml").map(<[u8]>::to_vec), on_disk);
                }
                (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
                _ => prop_assert!(false, "{:?} vs {:?}", unpacked, read.as_ref().map(|_| ())),
            }
            let outside: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
            prop_assert_eq!(outside.len(), 2, "{:?}", outside);
            prop_assert_eq!(std::fs::read_dir(&jail).unwrap().count(), 1);
        }
    }
}
