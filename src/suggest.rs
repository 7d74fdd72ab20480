//! "Did you mean ...?" for a misspelt name: the nearest of the known names by edit distance.
//!
//! One place for config keys (`corelay check`) and access-log template variables, so both
//! suggest the same way.

/// Largest edit distance still suggested: two typos (`client_heder_timout`), or a swapped
/// pair plus one. Beyond it the nearest name is rarely what was meant.
const MAX_DISTANCE: usize = 2;

/// The known name nearest to `word`, if it is within [`MAX_DISTANCE`] edits and nearer
/// than half of `word` (so a short word is not "corrected" into an unrelated one).
pub fn nearest<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = MAX_DISTANCE.min(word.chars().count().div_ceil(2));
    known
        .into_iter()
        .map(|k| (distance(word, k), k))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, k)| k)
}

/// ` (did you mean `k`?)` for the nearest known name, or nothing.
pub fn hint<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    match nearest(word, known) {
        Some(k) => format!(" (did you mean `{k}`?)"),
        None => String::new(),
    }
}

/// Optimal string alignment distance: insertions, deletions, substitutions and swaps of two
/// neighbours each cost one (`tiemout` is one edit from `timeout`).
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // d[i][j]: distance between a[..i] and b[..j].
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(distance("", ""), 0);
        assert_eq!(distance("abc", ""), 3);
        assert_eq!(distance("timeout", "tiemout"), 1);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("client_header_timeout", "client_heder_timeout"), 1);
    }

    #[test]
    fn suggestions() {
        let keys = ["client_header_timeout", "client_body_timeout", "listen"];
        assert_eq!(
            nearest("client_header_timout", keys),
            Some("client_header_timeout")
        );
        assert_eq!(nearest("lsiten", keys), Some("listen"));
        assert_eq!(nearest("bogus", keys), None);
        // Two letters are not "nearly" anything.
        assert_eq!(nearest("ab", ["a", "abcd"]), Some("a"));
        assert_eq!(nearest("xy", ["listen"]), None);
        assert_eq!(
            hint("client_heder_timeout", keys),
            " (did you mean `client_header_timeout`?)"
        );
        assert_eq!(hint("zzz", keys), "");
    }
}
