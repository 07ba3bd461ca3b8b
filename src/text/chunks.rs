//! Sentence-aligned chunks of a long input for a model with a fixed window: the "map"
//! side of map-reduce summarization.

/// Join consecutive `parts` (sentences) with a space into chunks of at most `window`
/// tokens, by the parts' token `counts`. A part longer than the window is a chunk of its
/// own (the model then reads only its beginning, which the caller reports as truncated).
/// Empty input gives no chunks.
pub fn pack(parts: &[&str], counts: &[usize], window: usize) -> Vec<String> {
    let mut chunks: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut tokens = 0;
    for (part, &n) in parts.iter().zip(counts) {
        if !current.is_empty() && tokens + n > window {
            chunks.push(std::mem::take(&mut current));
            tokens = 0;
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(part);
        tokens += n;
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
    fn packs_in_order_within_the_window() {
        let parts = ["a b", "c d e", "f", "g h i j", "k"];
        let counts = [2, 3, 1, 4, 1];
        assert_eq!(pack(&parts, &counts, 6), ["a b c d e f", "g h i j k"]);
        assert_eq!(pack(&parts, &counts, 100), ["a b c d e f g h i j k"]);
        assert_eq!(
            pack(&parts, &counts, 3),
            ["a b", "c d e", "f", "g h i j", "k"]
        );
        assert!(pack(&[], &[], 10).is_empty());
    }

    #[test]
    fn nothing_is_lost() {
        let parts: Vec<String> = (0..500).map(|i| format!("s{i}.")).collect();
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        let counts: Vec<usize> = (0..500).map(|i| 1 + i % 7).collect();
        let chunks = pack(&refs, &counts, 20);
        assert_eq!(chunks.join(" "), refs.join(" "));
        assert!(chunks.len() > 1);
    }
}
