//! Where the key sequences come from: trace files (the formats of Caffeine's simulator, which
//! the traces in `/work/shared/traces` use) and Zipf workloads drawn with a seeded RNG.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

/// Reads a trace file into its keys, in order: `.gz` is gunzipped, `.xz` unxz-ed, anything
/// else read as is. The decompressed bytes are a text trace when they look like one (see
/// [`is_text`]), else a binary one; `limit` keeps only the first that many accesses.
pub(crate) fn read_trace(path: &Path, limit: Option<usize>) -> Result<Vec<u64>, String> {
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut file = BufReader::new(File::open(path).map_err(err)?);
    let name = path.to_string_lossy();
    let mut bytes = Vec::new();
    if name.ends_with(".gz") {
        // Multi-member: a concatenation of gzip streams is one valid .gz file.
        flate2::bufread::MultiGzDecoder::new(file)
            .read_to_end(&mut bytes)
            .map_err(err)?;
    } else if name.ends_with(".xz") {
        lzma_rs::xz_decompress(&mut file, &mut bytes)
            .map_err(|e| format!("{}: xz: {e}", path.display()))?;
    } else {
        file.read_to_end(&mut bytes).map_err(err)?;
    }
    let mut keys = if is_text(&bytes) {
        parse_text(&bytes)
    } else {
        // Say what was expected: a file of anything else lands here.
        parse_binary(&bytes).map_err(|e| {
            format!(
                "not a trace: neither text (one integer key per line) nor binary (big-endian \
                 32-bit keys: {e})"
            )
        })
    }
    .map_err(|e| format!("{}: {e}", path.display()))?;
    if let Some(limit) = limit {
        keys.truncate(limit);
    }
    Ok(keys)
}

/// A text trace (the LIRS traces) holds only digits, `*` separators and line ends. A binary
/// trace of 32-bit keys has zero bytes in any key below 2^24, so the two do not mix up on
/// real data; an empty file is an empty text trace.
pub(crate) fn is_text(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|b| b.is_ascii_digit() || matches!(b, b'*' | b'\r' | b'\n' | b' ' | b'\t'))
}

/// One integer key per line; blank lines and `*` lines (phase markers in the LIRS traces,
/// which Caffeine's LIRS reader skips too) are not accesses. CRLF line ends are fine.
pub(crate) fn parse_text(bytes: &[u8]) -> Result<Vec<u64>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line == "*" {
            continue;
        }
        let key = line
            .parse()
            .map_err(|e| format!("line {}: {line:?}: {e}", n + 1))?;
        keys.push(key);
    }
    Ok(keys)
}

/// Big-endian unsigned 32-bit keys, back to back (the cache2k traces).
pub(crate) fn parse_binary(bytes: &[u8]) -> Result<Vec<u64>, String> {
    let chunks = bytes.chunks_exact(4);
    if !chunks.remainder().is_empty() {
        return Err(format!(
            "{} bytes is not a whole number of 32-bit keys",
            bytes.len()
        ));
    }
    Ok(chunks
        .map(|c| u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
        .collect())
}

/// Zipf(s) over `n` keys: key `k` (0-based rank) is drawn with probability proportional to
/// `1 / (k + 1)^s`. Exact, by inverse transform on the cumulative weights (800 KB for 100k
/// keys), so two samplers with the same seed draw the same keys on every platform.
pub(crate) struct Zipf {
    /// `cumulative[k]` = sum of the weights of ranks 0..=k.
    cumulative: Vec<f64>,
}

impl Zipf {
    pub(crate) fn new(n: usize, s: f64) -> Zipf {
        let mut total = 0.0;
        let cumulative = (1..=n)
            .map(|rank| {
                total += (rank as f64).powf(-s);
                total
            })
            .collect();
        Zipf { cumulative }
    }

    pub(crate) fn sample(&self, rng: &mut fastrand::Rng) -> u64 {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        let u = rng.f64() * total;
        // The first rank whose cumulative weight exceeds u; u < total, so it exists (the
        // `min` guards against rounding at the top).
        let rank = self.cumulative.partition_point(|&c| c <= u);
        rank.min(self.cumulative.len().saturating_sub(1)) as u64
    }
}

/// `accesses` keys drawn from Zipf(`s`) over `n` keys with a fastrand RNG seeded by `seed`.
pub(crate) fn zipf_trace(n: usize, s: f64, accesses: usize, seed: u64) -> Vec<u64> {
    let zipf = Zipf::new(n, s);
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..accesses).map(|_| zipf.sample(&mut rng)).collect()
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// A file in a fresh temporary directory, removed with it.
    struct TempFile(std::path::PathBuf);

    impl TempFile {
        fn new(name: &str, contents: &[u8]) -> TempFile {
            let dir = std::env::temp_dir().join(format!(
                "fncache-hit-ratio-{}-{}",
                std::process::id(),
                fastrand::u64(..)
            ));
            std::fs::create_dir_all(&dir).expect("temp dir");
            let path = dir.join(name);
            std::fs::write(&path, contents).expect("write");
            TempFile(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            if let Some(dir) = self.0.parent() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }

    #[test]
    fn text_traces_skip_blank_and_star_lines_and_take_crlf() {
        let keys = parse_text(b"0\r\n17\r\n*\r\n\r\n4294967296\r\n17").expect("parses");
        assert_eq!(keys, [0, 17, 4_294_967_296, 17]);
    }

    #[test]
    fn a_text_trace_with_a_word_in_it_is_an_error_naming_the_line() {
        let err = parse_text(b"1\n2\nthree\n").expect_err("not a trace");
        assert!(err.starts_with("line 3:"), "{err}");
    }

    #[test]
    fn binary_traces_are_big_endian_u32s() {
        let keys = parse_binary(&[0, 0, 0, 1, 0, 0, 1, 0, 0xff, 0xff, 0xff, 0xff]).expect("ok");
        assert_eq!(keys, [1, 256, u64::from(u32::MAX)]);
        assert!(parse_binary(&[0, 0, 0, 1, 0]).is_err(), "a torn key");
    }

    #[test]
    fn the_formats_are_told_apart_by_content() {
        assert!(is_text(b"12\r\n*\r\n3\n"));
        assert!(!is_text(&[0, 0, 0, 1]));
        // A binary key made of digit bytes alone would pass for text: keys >= 0x30303030,
        // which the cache2k traces (dense small integers) do not have.
        assert!(is_text(b"0000"));
    }

    #[test]
    fn gzipped_text_traces_are_read_and_limited() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"5\r\n6\r\n*\r\n7\r\n5\r\n").expect("gzip");
        let file = TempFile::new("tiny.trace.gz", &gz.finish().expect("gzip"));
        assert_eq!(read_trace(&file.0, None).expect("reads"), [5, 6, 7, 5]);
        assert_eq!(read_trace(&file.0, Some(2)).expect("reads"), [5, 6]);
    }

    #[test]
    fn xz_binary_traces_are_read() {
        let raw: Vec<u8> = [3u32, 1, 3, 70_000]
            .iter()
            .flat_map(|k| k.to_be_bytes())
            .collect();
        let mut xz = Vec::new();
        lzma_rs::xz_compress(&mut &raw[..], &mut xz).expect("xz");
        let file = TempFile::new("tiny.trace.xz", &xz);
        assert_eq!(read_trace(&file.0, None).expect("reads"), [3, 1, 3, 70_000]);
    }

    #[test]
    fn zipf_is_deterministic_per_seed() {
        let a = zipf_trace(1000, 0.9, 5000, 7);
        assert_eq!(a, zipf_trace(1000, 0.9, 5000, 7));
        assert_ne!(a, zipf_trace(1000, 0.9, 5000, 8));
        assert!(a.iter().all(|&k| k < 1000));
    }

    #[test]
    fn zipf_has_the_shape_of_its_exponent() {
        // Zipf(1) over 100 keys: P(rank 0) = 1 / H(100) = 0.193, P(rank 1) half of it,
        // P(rank 9) a tenth of it.
        let keys = zipf_trace(100, 1.0, 200_000, 1);
        let freq = |k: u64| keys.iter().filter(|&&x| x == k).count() as f64 / keys.len() as f64;
        let h100: f64 = (1..=100).map(|r| 1.0 / f64::from(r)).sum();
        assert!((freq(0) - 1.0 / h100).abs() < 0.01, "{}", freq(0));
        assert!(
            (freq(0) / freq(1) - 2.0).abs() < 0.1,
            "{}",
            freq(0) / freq(1)
        );
        assert!(
            (freq(0) / freq(9) - 10.0).abs() < 1.0,
            "{}",
            freq(0) / freq(9)
        );
        // s = 0 is uniform.
        let flat = zipf_trace(4, 0.0, 40_000, 2);
        for k in 0..4 {
            let n = flat.iter().filter(|&&x| x == k).count();
            assert!((9_000..11_000).contains(&n), "key {k}: {n}");
        }
    }
}
