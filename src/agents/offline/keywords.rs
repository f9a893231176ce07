//! Keywords of the talk by jieba's TF-IDF, with chat filler removed by a stopword list: IDF alone ranks
//! "亲" or "好的" high in chat, because the reference corpus is news, not conversation.

use std::collections::BTreeSet;

use jieba_rs::{KeywordExtract, KeywordExtractConfig, TfIdf};

use super::text::JIEBA;
use crate::agents::Keyword;
use crate::archive::Message;
use crate::sensitive::mask_pii;

pub struct KeywordExtractor {
    tfidf: TfIdf,
}

const TOP_K: usize = 8;
/// Nouns, verbs, verbal nouns, idioms and Latin words: the parts of speech a topic is made of. Pronoun
/// and adverb phrases ("我想", "问下") rank high by IDF but say nothing about the talk.
const ALLOWED_POS: &[&str] = &[
    "n", "nr", "ns", "nt", "nz", "nw", "vn", "v", "eng", "an", "i", "l",
];

/// Numbers, codes and masked spans are prices, ids or phone fragments, never the topic; nor are Latin
/// fragments of one or two letters (what masking leaves of an id).
fn topical(word: &str) -> bool {
    if word
        .chars()
        .any(|c| c == '*' || c == '_' || c.is_ascii_digit())
    {
        return false;
    }
    if word.is_ascii() && word.len() < 3 {
        return false;
    }
    !word
        .chars()
        .all(|c| "〇零一二三四五六七八九十百千万幺两".contains(c))
}
const EVIDENCE_PER_KEYWORD: usize = 5;

impl KeywordExtractor {
    pub fn new(stopwords: &str) -> KeywordExtractor {
        let mut stop: BTreeSet<String> = jieba_rs::DEFAULT_STOP_WORDS.clone();
        stop.extend(
            stopwords
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
        let mut tfidf = TfIdf::default();
        *tfidf.config_mut() = KeywordExtractConfig::builder()
            .set_stop_words(stop)
            .min_keyword_length(2)
            .use_hmm(false)
            .build();
        KeywordExtractor { tfidf }
    }

    pub fn extract(&self, messages: &[Message]) -> Vec<Keyword> {
        // Keywords are shown to managers and stored: extract them from masked text, so a phone number
        // or an id never becomes a "keyword", and from simplified text, which jieba's dictionary knows.
        let texts: Vec<(String, &str)> = messages
            .iter()
            .filter_map(|m| {
                m.text
                    .as_deref()
                    .map(|t| (fast2s::convert(&mask_pii(t)), m.msgid.as_str()))
            })
            .collect();
        let all: String = texts
            .iter()
            .map(|(t, _)| t.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        let allowed: Vec<String> = ALLOWED_POS.iter().map(|p| p.to_string()).collect();
        self.tfidf
            .extract_keywords(&JIEBA, &all, TOP_K * 3, allowed)
            .into_iter()
            .filter(|k| topical(&k.keyword))
            .take(TOP_K)
            .map(|k| Keyword {
                evidence: texts
                    .iter()
                    .filter(|(t, _)| t.contains(k.keyword.as_str()))
                    .take(EVIDENCE_PER_KEYWORD)
                    .map(|(_, id)| id.to_string())
                    .collect(),
                word: k.keyword,
                weight: (k.weight * 1000.0).round() / 1000.0,
            })
            .collect()
    }
}
