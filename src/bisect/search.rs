//! Bisection: the first of an ordered list of candidate changes that turns good into bad, with
//! as few probes as the order allows (each probe is a real resolution or build).

/// Find the first index in `0..n` whose probe is bad, assuming everything before the culprit
/// is good and everything from it on is bad (a single culprit). `probe(i)` answers for the
/// state with candidates `0..=i` applied. The caller knows the state with all `n` applied is
/// bad; this makes at most ⌈log2 n⌉ probes.
pub fn first_bad<E>(
    n: usize,
    mut probe: impl FnMut(usize) -> Result<bool, E>,
) -> Result<Option<usize>, E> {
    if n == 0 {
        return Ok(None);
    }
    // Invariant: the state with `lo` candidates applied is good; with `hi` applied it is bad.
    let (mut lo, mut hi) = (0usize, n);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if probe(mid - 1)? {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(Some(hi - 1))
}

/// ⌈log2 n⌉, the most probes `first_bad` makes.
pub fn probe_bound(n: usize) -> u32 {
    if n <= 1 {
        0
    } else {
        usize::BITS - (n - 1).leading_zeros()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_culprit_within_the_bound() {
        for n in 1..200 {
            for culprit in 0..n {
                let mut probes = 0;
                let found = first_bad::<()>(n, |i| {
                    probes += 1;
                    Ok(i >= culprit)
                })
                .unwrap();
                assert_eq!(found, Some(culprit), "n={n}");
                assert!(
                    probes <= probe_bound(n),
                    "n={n} culprit={culprit} probes={probes}"
                );
            }
        }
        assert_eq!(probe_bound(1), 0);
        assert_eq!(probe_bound(8), 3);
        assert_eq!(probe_bound(9), 4);
    }
}
