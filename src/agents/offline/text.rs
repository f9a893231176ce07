//! Chinese word segmentation, shared by every offline analyser. jieba's dictionary takes a few hundred
//! milliseconds to load, so it is loaded once per process and shared read-only.

use std::sync::LazyLock;

use jieba_rs::Jieba;

pub static JIEBA: LazyLock<Jieba> = LazyLock::new(Jieba::new);

/// Words of a text, in order, with HMM for out-of-dictionary words (names, product jargon).
pub fn words(text: &str) -> Vec<&str> {
    JIEBA.cut(text, true).into_iter().map(|t| t.word).collect()
}

/// True for a token that only separates words: punctuation, symbols, white space.
pub fn is_separator(word: &str) -> bool {
    word.chars()
        .all(|c| c.is_whitespace() || c.is_ascii_punctuation() || is_cjk_punctuation(c))
}

fn is_cjk_punctuation(c: char) -> bool {
    matches!(c, '\u{3000}'..='\u{303f}' | '\u{ff01}'..='\u{ff0f}' | '\u{ff1a}'..='\u{ff20}' | '\u{ff3b}'..='\u{ff40}' | '\u{ff5b}'..='\u{ff65}' | '\u{2000}'..='\u{206f}')
}
