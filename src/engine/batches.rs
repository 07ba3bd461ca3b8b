//! Forward passes cut by cost: rows sorted by length go through a model in consecutive
//! batches, each padded to its widest row, so a batch of short rows beside one long row
//! computes mostly padding. `plan` cuts where padding would cost more than another pass.
//! Used for key-point sentences (`embedding`) and NER pieces (`tagging`).

use std::ops::Range;

/// What one forward pass costs beyond its tokens, in token slots: the per-pass work that
/// does not grow with the batch (launching each operator, waking the intra-op threads,
/// small matrices that use the cores poorly). Measured with all-MiniLM-L6-v2 on ONNX
/// Runtime, 2 threads, over the key-points benchmark's 30 articles: cut with 8, 32, 64 or
/// 128 slots a pass, the forward passes took 2.90, 2.74, 2.77, 2.84 s at fp32 and 2.22,
/// 2.24, 2.33, 2.63 s at int8, against 4.30 and 4.48 s in fixed batches of 32 (a shared
/// machine, load 2 to 3: read the ratios).
pub(crate) const PASS_COST: usize = 32;

/// Cut `widths` (token counts, ascending) into consecutive batches of at most `max_rows`
/// that cost least in all, a batch costing `pass_cost` plus its rows × its widest row.
/// Among equally cheap plans the one with fewer, larger batches is kept.
pub(crate) fn plan(widths: &[usize], max_rows: usize, pass_cost: usize) -> Vec<Range<usize>> {
    let max_rows = max_rows.max(1);
    let n = widths.len();
    // best[j]: the least cost of the first j rows; start[j]: where its last batch starts.
    let mut best = vec![0usize; n + 1];
    let mut start = vec![0usize; n + 1];
    for j in 1..=n {
        let first = j.saturating_sub(max_rows);
        let (mut cost, mut from) = (usize::MAX, j - 1);
        for (i, &before) in best[first..j]
            .iter()
            .enumerate()
            .map(|(k, b)| (first + k, b))
        {
            let c = before + pass_cost + (j - i) * widths[j - 1];
            if c < cost {
                (cost, from) = (c, i);
            }
        }
        best[j] = cost;
        start[j] = from;
    }
    let mut ranges = Vec::new();
    let mut j = n;
    while j > 0 {
        ranges.push(start[j]..j);
        j = start[j];
    }
    ranges.reverse();
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slots the plan computes: each batch's rows × its widest row.
    fn padded(widths: &[usize], plan: &[Range<usize>]) -> usize {
        plan.iter().map(|r| r.len() * widths[r.end - 1]).sum()
    }

    #[test]
    fn plans_cover_every_row_once_in_order_within_the_row_limit() {
        let cases: &[(&[usize], usize, usize)] = &[
            (&[], 32, 32),
            (&[7], 32, 32),
            (&[5; 100], 32, 32),
            (&[3, 3, 4, 9, 9, 9, 40, 41, 200, 256], 4, 0),
            (&[3, 3, 4, 9, 9, 9, 40, 41, 200, 256], 1, 1000),
            (&[3, 3, 4, 9, 9, 9, 40, 41, 200, 256], 0, 32),
        ];
        for &(widths, max_rows, cost) in cases {
            let plan = plan(widths, max_rows, cost);
            let mut next = 0;
            for r in &plan {
                assert_eq!(r.start, next, "{widths:?}: {plan:?}");
                assert!(!r.is_empty() && r.len() <= max_rows.max(1), "{plan:?}");
                next = r.end;
            }
            assert_eq!(next, widths.len(), "{widths:?}: {plan:?}");
        }
    }

    #[test]
    fn equal_lengths_fill_whole_batches() {
        let widths = [30usize; 70];
        let plan = plan(&widths, 32, 32);
        let sizes: Vec<usize> = plan.iter().map(|r| r.len()).collect();
        assert_eq!(sizes.iter().sum::<usize>(), 70);
        assert_eq!(sizes.len(), 3, "{sizes:?}");
        assert_eq!(padded(&widths, &plan), 70 * 30);
    }

    #[test]
    fn a_long_tail_gets_its_own_batch_when_padding_costs_more_than_a_pass() {
        // Ten short sentences and two long ones: one batch would pad the ten to 120.
        let mut widths = vec![20usize; 10];
        widths.extend([110, 120]);
        let plan = plan(&widths, 32, 32);
        assert_eq!(plan, vec![0..10, 10..12]);
        assert_eq!(padded(&widths, &plan), 10 * 20 + 2 * 120);
        // When a pass costs more than the padding saved, they stay together.
        assert_eq!(super::plan(&widths, 32, 2000), vec![0..12]);
        // With passes free, every distinct width is its own batch.
        let free = super::plan(&[4, 4, 5, 6, 6], 32, 0);
        assert_eq!(free, vec![0..2, 2..3, 3..5]);
    }

    #[test]
    fn the_plan_never_computes_more_than_fixed_batches() {
        // The benchmark article's shape: sentence lengths from 24 to 70 tokens.
        let widths = [24, 24, 31, 31, 35, 36, 36, 39, 44, 45, 47, 47, 70, 70];
        let plan = plan(&widths, 32, 32);
        let fixed = widths.len() * 70;
        let cost = |p: &[Range<usize>]| p.len() * 32 + padded(&widths, p);
        assert!(cost(&plan) < 32 + fixed, "{plan:?}");
        assert!(padded(&widths, &plan) < fixed, "{plan:?}");
    }
}
