//! Mutations of real inputs: byte-level changes any parser must survive (bit flips, interesting
//! integers, cut, repeated and spliced ranges, truncation) and text-level ones for the text formats
//! (numbers swapped for boundary values, lines dropped, repeated or swapped).

/// A small deterministic generator (SplitMix64), so that a run is reproduced from its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const INTERESTING_BYTES: [u8; 12] = [0, 1, 0x7f, 0x80, 0xff, b'-', b'9', b'\n', b'"', b'[', b'.', b'e'];
const INTERESTING_INTS: [u64; 10] =
    [0, 1, u64::MAX, 0x7fff_ffff, 0xffff_ffff, 0x8000_0000, 0xffff, 0x100, 0x7fff_ffff_ffff_ffff, 3];
const INTERESTING_NUMBERS: [&str; 16] = [
    "0",
    "-1",
    "1e308",
    "1e309",
    "-0",
    "nan",
    "inf",
    "99999999999999999999",
    "0.0000001",
    "4294967296",
    "18446744073709551616",
    "2147483648",
    "",
    "-9223372036854775808",
    "1.5",
    "NaN",
];

/// Applies one to five mutations to `input`; `others` are the other seeds, for splicing.
pub fn mutate(rng: &mut Rng, input: &[u8], others: &[Vec<u8>], text: bool) -> Vec<u8> {
    let mut data = input.to_vec();
    for _ in 0..1 + rng.below(5) {
        if text && rng.chance(2) {
            mutate_text(rng, &mut data);
        } else {
            mutate_bytes(rng, &mut data, others);
        }
    }
    data
}

fn mutate_bytes(rng: &mut Rng, data: &mut Vec<u8>, others: &[Vec<u8>]) {
    if data.is_empty() {
        data.push(*rng.pick(&INTERESTING_BYTES));
        return;
    }
    let at = rng.below(data.len());
    match rng.below(8) {
        0 => data[at] ^= 1 << rng.below(8),
        1 => data[at] = *rng.pick(&INTERESTING_BYTES),
        2 => {
            let len = 1 + rng.below(64.min(data.len() - at));
            data.drain(at..at + len);
        }
        3 => {
            let len = 1 + rng.below(64.min(data.len() - at));
            let copy: Vec<u8> = data[at..at + len].to_vec();
            let to = rng.below(data.len());
            data.splice(to..to, copy);
        }
        4 => {
            let value = *rng.pick(&INTERESTING_INTS);
            let width = *rng.pick(&[1usize, 2, 4, 8]);
            let bytes = if rng.chance(2) { value.to_le_bytes() } else { value.to_be_bytes() };
            let bytes = if rng.chance(2) { &bytes[..width] } else { &bytes[8 - width..] };
            for (i, b) in bytes.iter().enumerate() {
                if let Some(slot) = data.get_mut(at + i) {
                    *slot = *b;
                }
            }
        }
        5 => data.truncate(at),
        6 => {
            let count = 1 + rng.below(16);
            let random: Vec<u8> = (0..count).map(|_| rng.next() as u8).collect();
            data.splice(at..at, random);
        }
        _ => {
            let other = rng.pick(others);
            if !other.is_empty() {
                let from = rng.below(other.len());
                let len = 1 + rng.below(256.min(other.len() - from));
                let end = (at + len).min(data.len());
                data.splice(at..end, other[from..from + len].iter().copied());
            }
        }
    }
}

fn mutate_text(rng: &mut Rng, data: &mut Vec<u8>) {
    let mut lines: Vec<Vec<u8>> = data.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    match rng.below(5) {
        0 | 1 => {
            // A number somewhere becomes a boundary value.
            let numbers: Vec<(usize, usize)> = number_spans(data);
            if let Some(&(start, end)) = numbers.get(rng.below(numbers.len().max(1))) {
                data.splice(start..end, rng.pick(&INTERESTING_NUMBERS).bytes());
            }
            return;
        }
        2 => {
            let at = rng.below(lines.len());
            lines.remove(at);
        }
        3 => {
            let at = rng.below(lines.len());
            let line = lines[at].clone();
            lines.insert(rng.below(lines.len() + 1), line);
        }
        _ => {
            let (a, b) = (rng.below(lines.len()), rng.below(lines.len()));
            lines.swap(a, b);
        }
    }
    *data = lines.join(&b'\n');
}

/// The byte ranges of the decimal numbers in `data`.
fn number_spans(data: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = None;
    for (i, &b) in data.iter().enumerate() {
        let numeric = b.is_ascii_digit() || (start.is_some() && matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'));
        match (start, numeric) {
            (None, true) => start = Some(i),
            (Some(s), false) => {
                spans.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        spans.push((s, data.len()));
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_found_and_mutations_are_reproducible() {
        assert_eq!(number_spans(b"a = 12.5e-3, b = 7"), vec![(4, 11), (17, 18)]);
        let seeds = vec![b"sigma = 0.1\nwindow = 128\n".to_vec()];
        let first: Vec<Vec<u8>> =
            (0..20).scan(Rng::new(9), |rng, _| Some(mutate(rng, &seeds[0], &seeds, true))).collect();
        let again: Vec<Vec<u8>> =
            (0..20).scan(Rng::new(9), |rng, _| Some(mutate(rng, &seeds[0], &seeds, true))).collect();
        assert_eq!(first, again);
        assert!(first.iter().any(|m| m != &seeds[0]));
    }
}
