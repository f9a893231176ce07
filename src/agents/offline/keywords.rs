//! Keywords of the talk by jieba's TF-IDF, with chat filler removed by a stopword list (IDF alone ranks
//! "亲" or "好的" high in chat, because the reference corpus is news, not conversation), nouns over
//! verbs, the customer's words over staff's, and compounds jieba cuts apart put back together
//! ("直播" + "课"). At most three, and only those near the top one's weight.
//!
//! jieba's IDF comes from news, where "发票" or "延保" are no rarer than "系统" or "后续": a list of the
//! domain terms managers tag talks with (`lexicons/domain_terms.txt`) lifts those, and a term found in
//! the text replaces the pieces jieba cut it into or the longer word it sits in ("开发票" → "发票",
//! "直播" + "课" → "直播课"), so a keyword is a whole term, not a fragment.

use std::collections::{BTreeSet, HashMap};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use jieba_rs::{KeywordExtract, KeywordExtractConfig, TfIdf};

use super::datafile::records;
use super::text::JIEBA;
use crate::agents::Keyword;
use crate::archive::{Message, Role};
use crate::sensitive::mask_pii;

pub struct KeywordExtractor {
    tfidf: TfIdf,
    /// Leftmost-longest over the domain terms, so "私有化部署" wins over "部署" inside it.
    domain: Option<AhoCorasick>,
    terms: Vec<String>,
}

/// A manager tags a talk with one to three words; more is noise.
const TOP_K: usize = 3;
/// A keyword must weigh at least this share of the top one: a talk about one thing gets one keyword.
const RATIO: f64 = 0.3;
/// Weight of a word the customer used: what they wrote about is what the talk is about, staff add
/// the process around it.
const CUSTOMER_BOOST: f64 = 2.0;
/// Weight of a domain term over a word of the same TF-IDF: what a manager would tag the talk with.
const DOMAIN_BOOST: f64 = 3.0;

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
    /// `domain_terms`: one term a line, `#` comments, as `lexicons/domain_terms.txt`.
    pub fn new(stopwords: &str, domain_terms: &str) -> KeywordExtractor {
        let mut stop: BTreeSet<String> = jieba_rs::DEFAULT_STOP_WORDS.clone();
        stop.extend(first_fields(stopwords).map(str::to_string));
        let mut tfidf = TfIdf::default();
        *tfidf.config_mut() = KeywordExtractConfig::builder()
            .set_stop_words(stop)
            .min_keyword_length(2)
            .use_hmm(false)
            .build();
        let terms: Vec<String> = first_fields(domain_terms)
            .map(fast2s::convert)
            .collect::<BTreeSet<String>>()
            .into_iter()
            .collect();
        // Built from a fixed, embedded list: a failure is a broken build, which tests catch; the
        // extractor then works from TF-IDF alone.
        let domain = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            .ascii_case_insensitive(true)
            .build(&terms)
            .ok();
        KeywordExtractor {
            tfidf,
            domain,
            terms,
        }
    }

    /// How often each domain term occurs in the texts.
    fn domain_hits(&self, texts: &[(String, &str)]) -> HashMap<&str, usize> {
        let mut hits = HashMap::new();
        let Some(ac) = &self.domain else {
            return hits;
        };
        for (text, _) in texts {
            for m in ac.find_iter(text.as_str()) {
                *hits
                    .entry(self.terms[m.pattern().as_usize()].as_str())
                    .or_default() += 1;
            }
        }
        hits
    }

    /// Domain terms found in the text take the place of the candidates that overlap them (a piece of
    /// the term, or a longer word around it), with the best weight among those, lifted by
    /// [`DOMAIN_BOOST`]; a term no candidate overlaps (jieba tagged it as something unlisted) starts
    /// from the weakest candidate's weight.
    fn with_domain_terms(
        &self,
        candidates: Vec<(String, f64)>,
        texts: &[(String, &str)],
        floor: f64,
    ) -> Vec<(String, f64)> {
        let hits = self.domain_hits(texts);
        if hits.is_empty() {
            return candidates;
        }
        let mut terms: HashMap<&str, f64> = hits
            .iter()
            .map(|(t, n)| (*t, floor * (*n as f64).min(3.0)))
            .collect();
        // Latin terms match case-insensitively ("crm" is "CRM"): compare in lower case, once per term.
        let lowered: Vec<(&str, String)> = hits.keys().map(|t| (*t, t.to_lowercase())).collect();
        let mut out = Vec::with_capacity(candidates.len());
        for (word, w) in candidates {
            let lower = word.to_lowercase();
            let overlapping: Vec<&str> = lowered
                .iter()
                .filter(|(_, t)| lower.contains(t.as_str()) || t.contains(lower.as_str()))
                .map(|(t, _)| *t)
                .collect();
            if overlapping.is_empty() {
                out.push((word, w));
                continue;
            }
            for t in overlapping {
                let e = terms.entry(t).or_default();
                *e = e.max(w);
            }
        }
        out.extend(
            terms
                .into_iter()
                .map(|(t, w)| (t.to_string(), w * DOMAIN_BOOST)),
        );
        out
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
        let customer: Vec<&str> = messages
            .iter()
            .filter(|m| m.text.is_some())
            .zip(&texts)
            .filter(|(m, _)| m.role() == Role::Customer)
            .map(|(_, (t, _))| t.as_str())
            .collect();
        let all: String = texts
            .iter()
            .map(|(t, _)| t.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        let allowed: Vec<String> = ALLOWED_POS.iter().map(|p| p.to_string()).collect();
        let singles: Vec<jieba_rs::Keyword> = self
            .tfidf
            .extract_keywords(&JIEBA, &all, 60, allowed)
            .into_iter()
            .filter(|k| topical(&k.keyword))
            .collect();
        let floor = singles
            .iter()
            .map(|k| k.weight)
            .reduce(f64::min)
            .unwrap_or(0.0);
        let mut candidates = self.with_domain_terms(rank(singles, &texts), &texts, floor);
        for (word, w) in &mut candidates {
            if customer.iter().any(|t| t.contains(word.as_str())) {
                *w *= CUSTOMER_BOOST;
            }
        }
        candidates.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let top = candidates.first().map_or(0.0, |k| k.1);
        candidates
            .into_iter()
            .filter(|k| k.1 >= RATIO * top)
            .take(TOP_K)
            .map(|(word, weight)| Keyword {
                evidence: texts
                    .iter()
                    .filter(|(t, _)| t.contains(word.as_str()))
                    .take(EVIDENCE_PER_KEYWORD)
                    .map(|(_, id)| id.to_string())
                    .collect(),
                // Relative to the session's top keyword: the first is as sure as keywords get.
                confidence: Some(if top > 0.0 {
                    ((weight / top) * 100.0).round() / 100.0
                } else {
                    0.0
                }),
                word,
                weight: (weight * 1000.0).round() / 1000.0,
            })
            .collect()
    }
}

/// The first field of each record: a word list's words (anything after a comma is a note).
fn first_fields(text: &str) -> impl Iterator<Item = &str> {
    records(text).filter_map(|(_, fields)| fields.first().copied().filter(|w| !w.is_empty()))
}

/// Single-character nouns that make a compound with the word before them: "直播课", "暑期班",
/// "团购价", "报价单", "尺码表". jieba cuts them off, and alone they are too short to be keywords.
const SUFFIXES: &[&str] = &[
    "课", "班", "价", "单", "表", "卡", "费", "证", "机", "券", "杯", "锅", "码", "险", "金", "款",
    "包", "器", "期", "营", "画", "号", "版", "套", "箱", "柜", "垫", "椅", "票",
];
/// Tags of words that can stand in a compound of two: nouns, names of things, verbal nouns.
const NOUNISH: &[&str] = &["n", "nz", "vn", "eng", "nt", "nw", "ns"];

/// How much a part of speech is worth as a keyword: topics are nouns; verbs say what was done
/// ("退款", "发货") and count for less; people's names and idioms rarely are what the talk is about.
fn pos_factor(tag: &str) -> f64 {
    match tag {
        t if NOUNISH.contains(&t) => 1.0,
        "v" => 0.7,
        "nr" => 0.3,
        _ => 0.5,
    }
}

/// Candidates with weights: jieba's TF-IDF words by part of speech, and compounds of two adjacent
/// words where the talk uses them together ("考研" + "数学", "直播" + "课"), which replace their parts
/// when the parts never occur apart.
fn rank(singles: Vec<jieba_rs::Keyword>, texts: &[(String, &str)]) -> Vec<(String, f64)> {
    use std::collections::HashMap;
    let weight: HashMap<&str, (f64, &str)> = singles
        .iter()
        .map(|k| (k.keyword.as_str(), (k.weight, k.tag.as_str())))
        .collect();
    // A compound of two words must recur to count; one of a word and a suffix is one already.
    let mut compounds: HashMap<String, (f64, usize, usize)> = HashMap::new();
    let mut inside: HashMap<&str, usize> = HashMap::new();
    let mut alone: HashMap<&str, usize> = HashMap::new();
    for (text, _) in texts {
        let tags = JIEBA.tag(text, false);
        for (i, t) in tags.iter().enumerate() {
            if weight.contains_key(t.word) {
                *alone.entry(t.word).or_default() += 1;
            }
            let Some(next) = tags.get(i + 1) else {
                continue;
            };
            let Some(&(wa, ta)) = weight.get(t.word) else {
                continue;
            };
            let pair = if SUFFIXES.contains(&next.word)
                && NOUNISH.iter().chain(&["v"]).any(|n| *n == ta)
            {
                Some((wa * 1.2, 1))
            } else {
                match weight.get(next.word) {
                    Some(&(wb, tb))
                        if NOUNISH.contains(&ta)
                            && NOUNISH.contains(&tb)
                            && t.word.chars().count() + next.word.chars().count() <= 5 =>
                    {
                        Some((wa + wb, 2))
                    }
                    _ => None,
                }
            };
            if let Some((w, needed)) = pair {
                let e = compounds
                    .entry(format!("{}{}", t.word, next.word))
                    .or_insert((w, 0, needed));
                e.1 += 1;
                *inside.entry(t.word).or_default() += 1;
                if weight.contains_key(next.word) {
                    *inside.entry(next.word).or_default() += 1;
                }
            }
        }
    }
    compounds.retain(|_, (_, seen, needed)| *seen >= *needed);
    let mut out: Vec<(String, f64)> = singles
        .iter()
        .filter(|k| {
            let a = alone.get(k.keyword.as_str()).copied().unwrap_or(0);
            let i = inside.get(k.keyword.as_str()).copied().unwrap_or(0);
            a == 0 || i < a
        })
        .map(|k| (k.keyword.clone(), k.weight * pos_factor(&k.tag)))
        .collect();
    out.extend(compounds.into_iter().map(|(w, (weight, _, _))| (w, weight)));
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
}
