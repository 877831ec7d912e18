//! Token sampling from logits: greedy, or repeat penalty → top-k → top-p → min-p → temperature →
//! a seeded draw (the order of llama.cpp's default sampler chain). The same seed gives the same
//! tokens; temperature 0 is argmax (ties go to the lowest id, as llama.cpp's greedy sampler).

use crate::error::{ErrorCode as E, Result, fail};

/// Sampling options (JS names in brackets; defaults as node-llama-cpp's).
#[derive(Clone, Debug, PartialEq)]
pub struct SamplerOptions {
    /// `temperature` (default 0 = greedy).
    pub temperature: f32,
    /// `topK` (default 40; 0 = all tokens).
    pub top_k: usize,
    /// `topP` (default 0.95; 1 = off).
    pub top_p: f32,
    /// `minP` (default 0 = off).
    pub min_p: f32,
    /// `repeatPenalty` (default 1 = off): logits of recent tokens are divided (if positive) or
    /// multiplied (if negative) by it.
    pub repeat_penalty: f32,
    /// `repeatPenalty.lastTokens` (default 64): how many recent tokens the penalties look at.
    pub repeat_last_n: usize,
    /// `repeatPenalty.frequencyPenalty` (default 0 = off): subtracted from a recent token's logit
    /// once per occurrence in the window (llama.cpp's `penalty_freq`).
    pub frequency_penalty: f32,
    /// `repeatPenalty.presencePenalty` (default 0 = off): subtracted once from the logit of every
    /// token present in the window (llama.cpp's `penalty_present`).
    pub presence_penalty: f32,
    /// `seed` (default: from the clock).
    pub seed: u64,
}

impl Default for SamplerOptions {
    fn default() -> Self {
        Self { temperature: 0.0, top_k: 40, top_p: 0.95, min_p: 0.0, repeat_penalty: 1.0, repeat_last_n: 64, frequency_penalty: 0.0, presence_penalty: 0.0, seed: clock_seed() }
    }
}

/// A seed from the clock (when the caller gives none).
pub fn clock_seed() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0x5eed, |d| d.as_nanos() as u64)
}

impl SamplerOptions {
    /// Checks ranges; errors name the option and value.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str, v: f32| fail(E::InvalidOption, format!("{what} must be a finite number in range, got {v}"));
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return bad("temperature (>= 0)", self.temperature);
        }
        if !(0.0..=1.0).contains(&self.top_p) {
            return bad("topP (0..1)", self.top_p);
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad("minP (0..1)", self.min_p);
        }
        if !self.repeat_penalty.is_finite() || self.repeat_penalty <= 0.0 {
            return bad("repeatPenalty (> 0)", self.repeat_penalty);
        }
        if !self.frequency_penalty.is_finite() {
            return bad("repeatPenalty.frequencyPenalty", self.frequency_penalty);
        }
        if !self.presence_penalty.is_finite() {
            return bad("repeatPenalty.presencePenalty", self.presence_penalty);
        }
        Ok(())
    }
}

/// A sampler: options plus its random state.
#[derive(Clone, Debug)]
pub struct Sampler {
    opts: SamplerOptions,
    rng: SplitMix64,
}

impl Sampler {
    /// A sampler seeded with `opts.seed`.
    pub fn new(opts: SamplerOptions) -> Self {
        let rng = SplitMix64(opts.seed);
        Self { opts, rng }
    }

    /// Picks the next token from `logits` (n_vocab), given the tokens so far (`history`).
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        let o = &self.opts;
        let penalize = (o.repeat_penalty != 1.0 || o.frequency_penalty != 0.0 || o.presence_penalty != 0.0) && o.repeat_last_n > 0;
        if o.temperature <= 0.0 && !penalize {
            return argmax(logits);
        }
        let mut cand: Vec<(u32, f32)> = logits.iter().enumerate().map(|(i, &l)| (i as u32, l)).collect();
        if penalize {
            apply_penalties(&mut cand, history, o);
        }
        if o.temperature <= 0.0 {
            let best = cand.iter().fold((0u32, f32::NEG_INFINITY), |b, &(i, l)| if l > b.1 { (i, l) } else { b });
            return best.0;
        }
        // Sort by logit, descending (stable: ties keep id order).
        cand.sort_by(|a, b| b.1.total_cmp(&a.1));
        if o.top_k > 0 {
            cand.truncate(o.top_k.max(1));
        }
        let mut probs = softmax(&cand);
        truncate_top_p(&mut cand, &mut probs, o.top_p);
        truncate_min_p(&mut cand, &mut probs, o.min_p);
        // Temperature on the survivors, then a draw.
        let scaled: Vec<(u32, f32)> = cand.iter().map(|&(i, l)| (i, l / o.temperature)).collect();
        let probs = softmax(&scaled);
        let r = self.rng.next_f64();
        let mut acc = 0.0;
        for (k, p) in probs.iter().enumerate() {
            acc += p;
            if r < acc {
                return scaled[k].0;
            }
        }
        scaled.last().map_or(0, |c| c.0)
    }
}

/// Index of the largest logit (the first one on ties).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = (0usize, f32::NEG_INFINITY);
    for (i, &l) in logits.iter().enumerate() {
        if l > best.1 {
            best = (i, l);
        }
    }
    best.0 as u32
}

/// The penalties as llama.cpp's `llama_sampler_penalties_apply` defines them, over the last
/// `repeat_last_n` tokens: for each distinct token seen `count` times, its logit is divided by the
/// repeat penalty if positive (multiplied if not), then `count × frequency + presence` is
/// subtracted.
fn apply_penalties(cand: &mut [(u32, f32)], history: &[u32], o: &SamplerOptions) {
    let start = history.len().saturating_sub(o.repeat_last_n);
    let mut counts: std::collections::HashMap<u32, u32> = std::collections::HashMap::new();
    for &t in &history[start..] {
        *counts.entry(t).or_default() += 1;
    }
    for (t, count) in counts {
        if let Some(c) = cand.get_mut(t as usize) {
            c.1 = if c.1 > 0.0 { c.1 / o.repeat_penalty } else { c.1 * o.repeat_penalty };
            c.1 -= count as f32 * o.frequency_penalty + o.presence_penalty;
        }
    }
}

/// Probabilities of the candidates (f64 for stability).
fn softmax(cand: &[(u32, f32)]) -> Vec<f64> {
    let max = cand.iter().map(|c| c.1).fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f64> = cand.iter().map(|c| f64::from(c.1 - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|e| e / sum).collect()
}

/// Keeps the smallest prefix whose probability mass reaches `top_p` (at least one token).
fn truncate_top_p(cand: &mut Vec<(u32, f32)>, probs: &mut Vec<f64>, top_p: f32) {
    if top_p >= 1.0 {
        return;
    }
    let mut acc = 0.0;
    let mut keep = cand.len();
    for (k, p) in probs.iter().enumerate() {
        acc += p;
        if acc >= f64::from(top_p) {
            keep = k + 1;
            break;
        }
    }
    cand.truncate(keep.max(1));
    probs.truncate(keep.max(1));
}

/// Drops candidates whose probability is below `min_p` × the best one's.
fn truncate_min_p(cand: &mut Vec<(u32, f32)>, probs: &mut Vec<f64>, min_p: f32) {
    if min_p <= 0.0 || probs.is_empty() {
        return;
    }
    let floor = probs[0] * f64::from(min_p);
    let keep = probs.iter().take_while(|&&p| p >= floor).count().max(1);
    cand.truncate(keep);
    probs.truncate(keep);
}

/// SplitMix64 (Steele, Lea, Flood 2014): a small, well-mixed, seedable generator.
#[derive(Clone, Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits() -> Vec<f32> {
        (0..100).map(|i| ((i * 37 % 17) as f32) * 0.3 - (i as f32) * 0.01).collect()
    }

    #[test]
    fn greedy_is_argmax_with_first_tie() {
        let mut s = Sampler::new(SamplerOptions { seed: 1, ..Default::default() });
        assert_eq!(s.sample(&[1.0, 3.0, 3.0, -1.0], &[]), 1);
        assert_eq!(s.sample(&logits(), &[]), argmax(&logits()));
    }

    #[test]
    fn same_seed_same_tokens_other_seed_differs() {
        let opts = |seed| SamplerOptions { temperature: 1.5, top_k: 0, top_p: 1.0, seed, ..Default::default() };
        let run = |seed| {
            let mut s = Sampler::new(opts(seed));
            (0..50).map(|_| s.sample(&logits(), &[])).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn top_k_one_is_greedy() {
        let mut s = Sampler::new(SamplerOptions { temperature: 2.0, top_k: 1, seed: 3, ..Default::default() });
        for _ in 0..20 {
            assert_eq!(s.sample(&logits(), &[]), argmax(&logits()));
        }
    }

    #[test]
    fn repeat_penalty_moves_greedy_choice() {
        let l = vec![2.0, 1.9, 0.0];
        let mut s = Sampler::new(SamplerOptions { repeat_penalty: 1.5, seed: 1, ..Default::default() });
        assert_eq!(s.sample(&l, &[0]), 1);
        // Outside the window the penalty no longer applies.
        let mut s = Sampler::new(SamplerOptions { repeat_penalty: 1.5, repeat_last_n: 1, seed: 1, ..Default::default() });
        assert_eq!(s.sample(&l, &[0, 2]), 0);
    }

    #[test]
    fn frequency_and_presence_penalties_subtract_per_occurrence_and_once() {
        // Token 0 seen twice, token 1 once, token 2 never: 3 − 2·0.5 − 0.25, 2 − 0.5 − 0.25, 1.5.
        let l = vec![3.0, 2.0, 1.5];
        let o = SamplerOptions { frequency_penalty: 0.5, presence_penalty: 0.25, seed: 1, ..Default::default() };
        let mut cand: Vec<(u32, f32)> = l.iter().enumerate().map(|(i, &x)| (i as u32, x)).collect();
        apply_penalties(&mut cand, &[0, 1, 0], &o);
        assert_eq!(cand.iter().map(|c| c.1).collect::<Vec<_>>(), vec![1.75, 1.25, 1.5]);
        assert_eq!(Sampler::new(o.clone()).sample(&l, &[0, 1, 0]), 0);
        let o = SamplerOptions { presence_penalty: 2.0, ..o };
        assert_eq!(Sampler::new(o).sample(&l, &[0, 1, 0]), 2);
    }

    #[test]
    fn min_p_and_top_p_cut_the_tail() {
        let l = vec![10.0, 9.0, 0.0, -5.0];
        for seed in 0..50 {
            let mut s = Sampler::new(SamplerOptions { temperature: 1.0, top_k: 0, top_p: 1.0, min_p: 0.2, seed, ..Default::default() });
            assert!(s.sample(&l, &[]) < 2);
            let mut s = Sampler::new(SamplerOptions { temperature: 1.0, top_k: 0, top_p: 0.5, seed, ..Default::default() });
            assert_eq!(s.sample(&l, &[]), 0);
        }
    }
}
