//! The order a builder's filesystem lists a folder in. A backend that zips files in the order
//! it finds them (poetry-core copying its metadata folder with `glob`) leaks it: on ext4 with
//! `dir_index` (Linux's default), a small folder lists by a hash of each name, keyed by a seed
//! `mkfs` chose at random. The search looks for a seed under which the published order is the
//! hash order, and the job's frontend (`frontend.py`, `install_listing_order`) lists every
//! folder the build reads in that order: the recipe names the seed, so the rebuild can be
//! checked by anyone.
//!
//! `hfs+` is the other order a publisher's Mac gave before APFS: HFS+ keeps a folder's names
//! sorted without case, and lists them so (chardet 3.0.4, zipped by wheel 0.29's `os.walk`).
//!
//! The hash is the kernel's `half_md4` with signed characters (`fs/ext4/hash.c`; mkfs on
//! x86 sets the signed flag); checked against `debugfs dx_hash` and a loop-mounted ext4.

/// The recipe value of a listing order: `ext4:` and the filesystem's hash seed.
pub const EXT4: &str = "ext4:";

const K2: u32 = 0o13240474631;
const K3: u32 = 0o15666365641;
/// The seed the kernel uses when the filesystem's is all zeros.
const DEFAULT_SEED: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];

/// One of the three rounds: its function, its constant, and each step's input word and shift.
type Round = (fn(u32, u32, u32) -> u32, u32, [(usize, u32); 8]);

fn half_md4(buf: &mut [u32; 4], input: &[u32; 8]) {
    fn f(x: u32, y: u32, z: u32) -> u32 {
        z ^ (x & (y ^ z))
    }
    fn g(x: u32, y: u32, z: u32) -> u32 {
        (x & y).wrapping_add((x ^ y) & z)
    }
    fn h(x: u32, y: u32, z: u32) -> u32 {
        x ^ y ^ z
    }
    let rounds: [Round; 3] = [
        (
            f,
            0,
            [
                (0, 3),
                (1, 7),
                (2, 11),
                (3, 19),
                (4, 3),
                (5, 7),
                (6, 11),
                (7, 19),
            ],
        ),
        (
            g,
            K2,
            [
                (1, 3),
                (3, 5),
                (5, 9),
                (7, 13),
                (0, 3),
                (2, 5),
                (4, 9),
                (6, 13),
            ],
        ),
        (
            h,
            K3,
            [
                (3, 3),
                (7, 9),
                (2, 11),
                (6, 15),
                (1, 3),
                (5, 9),
                (0, 11),
                (4, 15),
            ],
        ),
    ];
    let mut s = *buf;
    for (func, k, steps) in rounds {
        for (j, (index, shift)) in steps.into_iter().enumerate() {
            // The registers rotate a, d, c, b from one step to the next.
            let a = (4 - j % 4) % 4;
            let (b, c, d) = ((a + 1) % 4, (a + 2) % 4, (a + 3) % 4);
            s[a] = s[a]
                .wrapping_add(func(s[b], s[c], s[d]))
                .wrapping_add(input[index].wrapping_add(k))
                .rotate_left(shift);
        }
    }
    for (word, add) in buf.iter_mut().zip(s) {
        *word = word.wrapping_add(add);
    }
}

/// The kernel's `str2hashbuf_signed`: up to 32 bytes of what is left of the name as 8 words,
/// padded with a pattern of the remaining length.
fn words(rest: &[u8]) -> [u32; 8] {
    let len = rest.len() as u32;
    let mut pad = len | (len << 8);
    pad |= pad << 16;
    let mut out = [pad; 8];
    let mut filled = 0;
    let mut val = pad;
    for (i, &byte) in rest.iter().take(32).enumerate() {
        val = ((byte as i8) as i32 as u32).wrapping_add(val << 8);
        if i % 4 == 3 {
            out[filled] = val;
            filled += 1;
            val = pad;
        }
    }
    if filled < 8 {
        out[filled] = val;
    }
    out
}

/// ext4's (major, minor) hash of a name under a seed of four words.
pub fn dirhash(name: &[u8], seed: [u32; 4]) -> (u32, u32) {
    let mut buf = if seed == [0; 4] { DEFAULT_SEED } else { seed };
    for chunk_start in (0..name.len()).step_by(32) {
        half_md4(&mut buf, &words(&name[chunk_start..]));
    }
    let mut major = buf[1] & !1;
    // The end-of-folder marker is never a name's hash.
    if major == 0x7fff_ffff << 1 {
        major = (0x7fff_ffff - 1) << 1;
    }
    (major, buf[2])
}

/// The seed's four words as the kernel reads them from the superblock (little-endian).
fn seed_words(uuid: &[u8; 16]) -> [u32; 4] {
    std::array::from_fn(|i| u32::from_le_bytes(uuid[4 * i..4 * i + 4].try_into().unwrap()))
}

fn uuid_text(bytes: &[u8; 16]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// macOS's HFS+, which lists a folder sorted without case (its catalog's order).
pub const HFS: &str = "hfs+";

/// Whether a recipe's value names a listing order: `hfs+`, or an ext4 seed (`ext4:` and a
/// UUID's 32 hex digits).
pub fn is_valid(value: &str) -> bool {
    value == HFS
        || value.strip_prefix(EXT4).is_some_and(|uuid| {
            let groups: Vec<&str> = uuid.split('-').collect();
            groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
                && groups
                    .iter()
                    .all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
        })
}

/// The names in the order a folder of them lists under the seed.
pub fn order<'a>(names: &[&'a str], uuid: &[u8; 16]) -> Vec<&'a str> {
    let seed = seed_words(uuid);
    let mut sorted = names.to_vec();
    sorted.sort_by_key(|n| dirhash(n.as_bytes(), seed));
    sorted
}

/// The first of a fixed sequence of seeds (sha256 of `rewheel-N`) under which the names list
/// in the order given: `ext4:UUID`. Four names need about 24 tries, eight about 40,000; past
/// the bound the order is not taken to be a hash order.
pub fn seed_for(wanted: &[&str]) -> Option<String> {
    const TRIES: usize = 200_000;
    if wanted.len() < 2 {
        return None;
    }
    (0..TRIES).find_map(|i| {
        let digest = crate::fsutil::sha256_hex(format!("rewheel-{i}").as_bytes());
        let bytes: [u8; 16] = std::array::from_fn(|k| {
            u8::from_str_radix(&digest[2 * k..2 * k + 2], 16).expect("hex")
        });
        (order(wanted, &bytes) == wanted).then(|| format!("{EXT4}{}", uuid_text(&bytes)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uuid(text: &str) -> [u8; 16] {
        let hex: String = text.chars().filter(|c| *c != '-').collect();
        std::array::from_fn(|k| u8::from_str_radix(&hex[2 * k..2 * k + 2], 16).unwrap())
    }

    /// Values `debugfs -R "dx_hash -s SEED -h half_md4 NAME"` gives.
    #[test]
    fn the_hash_is_the_kernels() {
        let seed = seed_words(&uuid("59a6c369-63de-d100-9f91-0976116d73ad"));
        assert_eq!(dirhash(b"WHEEL", seed), (0x19d1_3a08, 0x5b8b_6a55));
        assert_eq!(
            dirhash(b"entry_points.txt", seed),
            (0xfeaf_eab6, 0x5ba4_263a)
        );
        assert_eq!(dirhash(&[b'a'; 40], seed), (0x71f5_57c4, 0xa325_9094));
        assert_eq!(dirhash(b"WHEEL", [0; 4]), (0xef99_0028, 0x9b40_fe97));
    }

    #[test]
    fn a_seed_is_found_for_an_order_and_gives_it() {
        // isort 5.13.2's metadata folder, written entry_points.txt, WHEEL, METADATA, LICENSE.
        let wanted = ["WHEEL", "LICENSE", "METADATA", "entry_points.txt"];
        let seed = seed_for(&wanted).unwrap();
        assert_eq!(seed, "ext4:59a6c369-63de-d100-9f91-0976116d73ad");
        let bytes = uuid(seed.strip_prefix(EXT4).unwrap());
        assert_eq!(
            order(
                &["entry_points.txt", "METADATA", "WHEEL", "LICENSE"],
                &bytes
            ),
            wanted
        );
        assert_eq!(seed_for(&["only"]), None);
        assert!(is_valid(&seed));
        for bad in [
            "ext4:",
            "ext4:59a6c369",
            "btrfs:59a6c369-63de-d100-9f91-0976116d73ad",
        ] {
            assert!(!is_valid(bad), "{bad}");
        }
    }
}
