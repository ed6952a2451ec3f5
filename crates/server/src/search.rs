//! Message search under encryption at rest: how text becomes index terms and how a query
//! matches a message. Pure functions; the store keeps the terms (`store/sql/search.rs`).
//!
//! Text is normalized (compatibility decomposition, combining marks dropped, lower-cased), so
//! "Café", "cafe" and "CAFÉ" are one word, in any script. Words are runs of letters and
//! digits; in scripts written without spaces (Chinese, Japanese kana, Thai, Lao, Khmer,
//! Myanmar) every character is a word of its own.
//!
//! The index never holds text: a message is indexed under the keyed hashes
//! (`Keyring::search_term`) of its conversation and each distinct *prefix* of its words up to
//! [`PREFIX_CHARS`] characters, so a query word finds the messages whose words start with its
//! first [`PREFIX_CHARS`] characters. Candidates are then opened and checked against the
//! whole query ([`Query::matches`]), which also removes hash collisions. What the hashes
//! reveal and cost is in docs/security.md ("Search").

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use crate::error::{Error, Result};

/// Word prefixes of up to this many characters are indexed.
pub const PREFIX_CHARS: usize = 4;

/// Words of a message indexed, at most (a 16 KiB body could hold thousands).
pub const MAX_INDEXED_WORDS: usize = 1_000;

/// Longest query, in characters.
pub const MAX_QUERY_CHARS: usize = 200;

/// Characters of scripts written without spaces between words: each is a word.
fn unspaced(c: char) -> bool {
    matches!(c as u32,
        0x0E00..=0x0EFF          // Thai, Lao
        | 0x1000..=0x109F        // Myanmar
        | 0x1780..=0x17FF        // Khmer
        | 0x3040..=0x30FF        // Hiragana, Katakana
        | 0x31F0..=0x31FF
        | 0x3400..=0x4DBF        // CJK
        | 0x4E00..=0x9FFF
        | 0xF900..=0xFAFF
        | 0x20000..=0x2FA1F)
}

/// The normalized words of `text`, in order (repeats kept).
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in text.nfkd().filter(|c| !is_combining_mark(*c)) {
        if unspaced(c) {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            out.push(c.to_string());
        } else if c.is_alphanumeric() {
            word.extend(c.to_lowercase());
        } else if !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// The first `n` characters of `word`.
fn prefix(word: &str, n: usize) -> &str {
    match word.char_indices().nth(n) {
        Some((i, _)) => &word[..i],
        None => word,
    }
}

/// The distinct prefixes a message is indexed under (see the module doc).
pub fn index_prefixes(body: &str) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    let mut distinct_words = std::collections::HashSet::new();
    for w in words(body) {
        if distinct_words.len() >= MAX_INDEXED_WORDS && !distinct_words.contains(&w) {
            break;
        }
        distinct_words.insert(w.clone());
        for n in 1..=PREFIX_CHARS {
            let p = prefix(&w, n);
            if seen.insert(p.to_owned()) {
                out.push(p.to_owned());
            }
            if p.len() == w.len() {
                break;
            }
        }
    }
    out
}

/// A parsed search query: every word must start some word of a matching message.
#[derive(Debug, Clone)]
pub struct Query {
    words: Vec<String>,
}

impl Query {
    /// `q` as the API takes it: 1 to [`MAX_QUERY_CHARS`] characters with at least one word.
    pub fn parse(q: &str) -> Result<Query> {
        let n = q.chars().count();
        if q.trim().is_empty() || n > MAX_QUERY_CHARS {
            return Err(Error::invalid(
                "q",
                format!("q must be 1-{MAX_QUERY_CHARS} characters"),
            ));
        }
        let mut words: Vec<String> = Vec::new();
        for w in self::words(q) {
            if !words.contains(&w) {
                words.push(w);
            }
        }
        if words.is_empty() {
            return Err(Error::invalid(
                "q",
                "q has no letters or digits to search for",
            ));
        }
        Ok(Query { words })
    }

    /// The prefix to look up in the index: the most selective one (the longest, up to
    /// [`PREFIX_CHARS`]).
    pub fn lookup_prefix(&self) -> &str {
        self.words
            .iter()
            .map(|w| prefix(w, PREFIX_CHARS))
            .max_by_key(|p| p.chars().count())
            .unwrap_or("")
    }

    /// Whether `text` matches: each query word starts one of its words.
    pub fn matches(&self, text: &str) -> bool {
        let have = words(text);
        self.words
            .iter()
            .all(|q| have.iter().any(|w| w.starts_with(q.as_str())))
    }

    /// The normalized words (for highlighting on clients, say).
    pub fn words(&self) -> &[String] {
        &self.words
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_fold_case_and_accents_in_any_script() {
        assert_eq!(words("Dinner on Friday?"), vec!["dinner", "on", "friday"]);
        assert_eq!(words("Café CRÈME naïve"), vec!["cafe", "creme", "naive"]);
        assert_eq!(words("Привет, МИР"), vec!["привет", "мир"]);
        assert_eq!(
            words("東京で会おう"),
            vec!["東", "京", "て", "会", "お", "う"]
        );
        assert_eq!(words("ｆｕｌｌ width"), vec!["full", "width"]);
        assert!(words("... !!! 🙂").is_empty());
    }

    #[test]
    fn queries_match_whole_words_and_word_starts() {
        let q = Query::parse("dinner friday").unwrap();
        assert!(q.matches("Dinner on Friday?"));
        assert!(!q.matches("Dinner on Saturday"));
        let q = Query::parse("meet").unwrap();
        assert!(q.matches("the meeting is at 5"));
        assert!(!q.matches("we met"));
        assert!(!q.matches("unmeetable"), "matches word starts only");
        let q = Query::parse("CAFE").unwrap();
        assert!(q.matches("un café noir"));
        let q = Query::parse("東京").unwrap();
        assert!(q.matches("明日東京で"));
    }

    #[test]
    fn queries_are_bounded() {
        assert!(Query::parse("").is_err());
        assert!(Query::parse("   ").is_err());
        assert!(Query::parse("?!").is_err());
        assert!(Query::parse(&"a".repeat(201)).is_err());
        assert!(Query::parse(&"a".repeat(200)).is_ok());
    }

    #[test]
    fn messages_are_indexed_under_short_prefixes_once_each() {
        let p = index_prefixes("meeting meet me");
        assert_eq!(p, vec!["m", "me", "mee", "meet"]);
        let q = Query::parse("meetings tomorrow").unwrap();
        // The longest lookup prefix is capped at PREFIX_CHARS characters.
        assert_eq!(q.lookup_prefix().chars().count(), PREFIX_CHARS);
        assert_eq!(index_prefixes("a ab"), vec!["a", "ab"]);
    }
}
