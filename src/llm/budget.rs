//! Token budgets. A model's context holds the prompt's fixed part, the conversation and the answer; a
//! session whose conversation does not fit is cut into chunks at message boundaries, each sent with the
//! same instructions, and the agents merge the chunk answers.
//!
//! Counts use tiktoken's tokenizer for the model (o200k for models tiktoken does not know, e.g. Qwen or
//! DeepSeek), which is within a few percent for Chinese text; the safety margin covers the rest.

/// Tokens of a text for a model.
pub fn count(model: &str, text: &str) -> usize {
    let bpe =
        tiktoken_rs::bpe_for_model(model).unwrap_or_else(|_| tiktoken_rs::o200k_base_singleton());
    bpe.encode_with_special_tokens(text).len()
}

/// Share of the context kept free for tokenizer mismatch and message framing.
const MARGIN: f64 = 0.1;

/// How many tokens of conversation fit beside the prompt and the answer.
pub fn conversation_budget(
    context_tokens: usize,
    prompt_tokens: usize,
    answer_tokens: usize,
) -> usize {
    let usable = (context_tokens as f64 * (1.0 - MARGIN)) as usize;
    usable.saturating_sub(prompt_tokens + answer_tokens)
}

/// Splits lines (one per message) into chunks of at most `budget` tokens, in order. A single line over
/// the budget is cut to fit, marked with `…`, rather than dropped.
pub fn chunk_lines(model: &str, lines: &[String], budget: usize) -> Vec<Vec<String>> {
    let budget = budget.max(16);
    let mut chunks: Vec<Vec<String>> = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut used = 0;
    for line in lines {
        let mut line = line.clone();
        let mut tokens = count(model, &line) + 1;
        if tokens > budget {
            // Trim by characters until it fits; Chinese runs about one token per character.
            let keep = line.chars().count() * budget / tokens;
            line = line
                .chars()
                .take(keep.saturating_sub(2))
                .collect::<String>()
                + "…";
            tokens = count(model, &line) + 1;
        }
        if used + tokens > budget && !current.is_empty() {
            chunks.push(std::mem::take(&mut current));
            used = 0;
        }
        used += tokens;
        current.push(line);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_respect_the_budget_and_keep_order() {
        let lines: Vec<String> = (0..200)
            .map(|i| {
                format!("{{\"msgid\":\"m{i}\",\"text\":\"客户问这个产品多少钱，有没有优惠\"}}")
            })
            .collect();
        let chunks = chunk_lines("gpt-4o-mini", &lines, 300);
        assert!(chunks.len() > 5);
        for c in &chunks {
            let tokens: usize = c.iter().map(|l| count("gpt-4o-mini", l) + 1).sum();
            assert!(tokens <= 300, "{tokens}");
        }
        let flat: Vec<String> = chunks.concat();
        assert_eq!(flat, lines);
    }

    #[test]
    fn an_overlong_message_is_cut_not_dropped() {
        let long = "很长的消息".repeat(400);
        let chunks = chunk_lines("gpt-4o-mini", &[long], 100);
        assert_eq!(chunks.len(), 1);
        assert!(chunks[0][0].ends_with('…'));
        assert!(count("gpt-4o-mini", &chunks[0][0]) <= 100);
    }

    #[test]
    fn budget_leaves_room_for_prompt_and_answer() {
        assert_eq!(conversation_budget(10_000, 1_000, 500), 7_500);
        assert_eq!(conversation_budget(1_000, 1_000, 500), 0);
    }
}
