//! Normalization for matching: what evaders vary is folded away, one table lookup per character.
//! Full-width forms become ASCII, letters lower-case, traditional characters simplified (fast2s's
//! table), and separators an evader slips between characters — punctuation, symbols, spaces, emoji,
//! zero-width and combining marks — are dropped. Each kept character remembers where it came from, so a
//! match in the normalized text maps back to exact offsets in the original.

use std::sync::LazyLock;

use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};

/// Marks a character that is dropped.
const SKIP: u32 = u32::MAX;

/// The folding of every BMP character, built once: 256 KiB, so it stays in cache while scanning.
static TABLE: LazyLock<Box<[u32]>> = LazyLock::new(|| {
    let mut table = vec![SKIP; 0x10000].into_boxed_slice();
    for (cp, slot) in table.iter_mut().enumerate() {
        if let Some(c) = char::from_u32(cp as u32) {
            if let Some(folded) = fold(c) {
                *slot = folded as u32;
            }
        }
    }
    table
});

/// The folded form of one character, `None` when it is dropped.
fn fold(c: char) -> Option<char> {
    if separator(c) {
        return None;
    }
    // Full-width ASCII variants (ＡＢＣ１２３) sit at a fixed distance from ASCII.
    let c = if ('\u{ff01}'..='\u{ff5e}').contains(&c) {
        char::from_u32(c as u32 - 0xfee0).unwrap_or(c)
    } else {
        c
    };
    if separator(c) {
        return None;
    }
    if c.is_ascii() {
        return Some(c.to_ascii_lowercase());
    }
    if c.len_utf8() == 3 && is_cjk(c) {
        let mut buf = [0u8; 4];
        return fast2s::convert(c.encode_utf8(&mut buf)).chars().next();
    }
    let mut lower = c.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(l), None) => Some(l),
        _ => Some(c),
    }
}

fn is_cjk(c: char) -> bool {
    matches!(c, '\u{3400}'..='\u{4dbf}' | '\u{4e00}'..='\u{9fff}' | '\u{f900}'..='\u{faff}')
}

/// Characters that never carry meaning for a match.
fn separator(c: char) -> bool {
    matches!(
        c.general_category_group(),
        GeneralCategoryGroup::Punctuation
            | GeneralCategoryGroup::Symbol
            | GeneralCategoryGroup::Separator
            | GeneralCategoryGroup::Other
            | GeneralCategoryGroup::Mark
    ) || c.is_whitespace()
}

/// Folds one character; `None` when it is dropped.
#[inline]
pub fn fold_char(c: char) -> Option<char> {
    let cp = c as u32;
    if cp < 0x10000 {
        let v = TABLE[cp as usize];
        (v != SKIP).then(|| char::from_u32(v).unwrap_or(c))
    } else if separator(c) {
        // Emoji and other astral symbols.
        None
    } else {
        Some(c)
    }
}

/// Normalizes a pattern (lexicon word) the same way as text.
/// The text in the order it is displayed, when bidirectional overrides reorder it: a right-to-left
/// override (U+202E) shows the characters up to the next pop (U+202C) or line end reversed, so
/// `\u{202e}信微我加` reads 加我微信 on screen. `None` when the text has no override, which is nearly
/// always. Nested embeddings are not modelled: an evader needs only the one.
pub fn visual_order(text: &str) -> Option<String> {
    if !text.contains('\u{202e}') {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut run: Vec<char> = Vec::new();
    let mut reversing = false;
    for c in text.chars() {
        match c {
            '\u{202e}' => {
                out.extend(run.drain(..).rev());
                reversing = true;
            }
            '\u{202c}' | '\n' | '\r' if reversing => {
                out.extend(run.drain(..).rev());
                reversing = false;
                out.push(c);
            }
            _ if reversing => run.push(c),
            _ => out.push(c),
        }
    }
    out.extend(run.drain(..).rev());
    Some(out)
}

pub fn normalize_word(word: &str) -> String {
    word.chars().filter_map(fold_char).collect()
}

/// A normalized text and, for each of its characters, the original byte offset it came from.
#[derive(Debug, Default)]
pub struct Normalized {
    pub text: String,
    /// `(normalized byte offset, original byte offset)` per kept character, in order.
    pub map: Vec<(u32, u32)>,
}

impl Normalized {
    pub fn clear(&mut self) {
        self.text.clear();
        self.map.clear();
    }

    /// Normalizes `original` into this buffer (reused between calls to avoid allocation).
    pub fn fill(&mut self, original: &str) {
        self.clear();
        self.text.reserve(original.len());
        self.map.reserve(original.len() / 2);
        for (i, c) in original.char_indices() {
            if let Some(f) = fold_char(c) {
                self.map.push((self.text.len() as u32, i as u32));
                self.text.push(f);
            }
        }
    }

    /// The original byte range covered by the normalized byte range `start..end`.
    pub fn original_range(&self, original: &str, start: usize, end: usize) -> (usize, usize) {
        let first = self.map.partition_point(|(n, _)| (*n as usize) < start);
        let last = self.map.partition_point(|(n, _)| (*n as usize) < end) - 1;
        let o_start = self.map[first].1 as usize;
        let o_last = self.map[last].1 as usize;
        let len = original[o_last..].chars().next().map_or(0, char::len_utf8);
        (o_start, o_last + len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_width_case_and_traditional_and_drops_separators() {
        assert_eq!(normalize_word("ＶＸ"), "vx");
        assert_eq!(normalize_word("加*我*微*信"), "加我微信");
        assert_eq!(normalize_word("微信號"), "微信号");
        assert_eq!(normalize_word("飛單"), "飞单");
        assert_eq!(normalize_word("煩死了"), "烦死了");
        assert_eq!(normalize_word("加🙂我\u{200b}微 信！"), "加我微信");
        assert_eq!(normalize_word("投、诉"), "投诉");
        assert_eq!(normalize_word("Ａ１"), "a1");
    }

    #[test]
    fn normalized_ranges_map_back_to_the_original() {
        let original = "先生，加*我*微*信吧";
        let mut n = Normalized::default();
        n.fill(original);
        let start = n.text.find("加我微信").unwrap();
        let (s, e) = n.original_range(original, start, start + "加我微信".len());
        assert_eq!(&original[s..e], "加*我*微*信");
    }
}
