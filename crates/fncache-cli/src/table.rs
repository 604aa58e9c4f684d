//! Plain-text tables that fit an 80-column terminal, and short renderings of sizes and times.

/// The width every table fits in.
pub(crate) const WIDTH: usize = 80;

/// How a column's cells are aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Align {
    Left,
    Right,
}

/// A line of a table: cells, or a note printed under the previous row as it is (cut at the
/// width).
#[derive(Debug)]
enum Line {
    Cells(Vec<String>),
    Note(String),
}

/// A table whose first column gives way when the whole does not fit.
#[derive(Debug)]
pub(crate) struct Table {
    headers: Vec<(&'static str, Align)>,
    lines: Vec<Line>,
}

impl Table {
    pub(crate) fn new(headers: &[(&'static str, Align)]) -> Table {
        Table {
            headers: headers.to_vec(),
            lines: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.lines.push(Line::Cells(cells));
    }

    pub(crate) fn note(&mut self, text: String) {
        self.lines.push(Line::Note(text));
    }

    /// The table as lines of at most [`WIDTH`] characters, indented by `indent`.
    pub(crate) fn render(&self, indent: usize) -> String {
        let mut widths: Vec<usize> = self
            .headers
            .iter()
            .map(|(h, _)| h.chars().count())
            .collect();
        for line in &self.lines {
            if let Line::Cells(cells) = line {
                for (w, cell) in widths.iter_mut().zip(cells) {
                    *w = (*w).max(cell.chars().count());
                }
            }
        }
        let total = indent + widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1);
        if total > WIDTH
            && let Some(first) = widths.first_mut()
        {
            *first = first.saturating_sub(total - WIDTH).max(6);
        }
        let mut out = String::new();
        let header: Vec<String> = self.headers.iter().map(|(h, _)| (*h).to_owned()).collect();
        self.push_cells(&mut out, indent, &widths, &header);
        for line in &self.lines {
            match line {
                Line::Cells(cells) => self.push_cells(&mut out, indent, &widths, cells),
                Line::Note(text) => {
                    out.push_str(&" ".repeat(indent));
                    out.push_str(&cut(text, WIDTH - indent));
                    out.push('\n');
                }
            }
        }
        out
    }

    fn push_cells(&self, out: &mut String, indent: usize, widths: &[usize], cells: &[String]) {
        let mut line = " ".repeat(indent);
        for (i, ((cell, width), (_, align))) in
            cells.iter().zip(widths).zip(&self.headers).enumerate()
        {
            if i > 0 {
                line.push_str("  ");
            }
            let cell = cut(cell, *width);
            let pad = " ".repeat(width - cell.chars().count());
            match align {
                Align::Left => {
                    line.push_str(&cell);
                    line.push_str(&pad);
                }
                Align::Right => {
                    line.push_str(&pad);
                    line.push_str(&cell);
                }
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

/// `text` in at most `width` characters, ending with `…` when cut.
pub(crate) fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A size in bytes, short: `512 B`, `12.3 KiB`, `4.0 MiB`.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    // Sizes are shown to one decimal: f64 is plenty.
    #[allow(clippy::cast_precision_loss)]
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A duration, short: `850ms`, `12s`, `3m4s`, `2h1m`, `3d4h`.
pub(crate) fn duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{}ms", d.as_millis()),
        1..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        3600..86400 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86400, s % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_wide_table_gives_way_in_its_first_column() {
        let mut t = Table::new(&[("NAME", Align::Left), ("N", Align::Right)]);
        t.row(vec!["x".repeat(100), "7".to_owned()]);
        t.row(vec!["short".to_owned(), "12345".to_owned()]);
        t.note("y".repeat(200));
        let text = t.render(0);
        for line in text.lines() {
            assert!(line.chars().count() <= WIDTH, "{line}");
        }
        assert!(text.contains('…'));
        assert!(text.lines().nth(2).unwrap().starts_with("short"));
        assert!(text.lines().nth(2).unwrap().ends_with("12345"));
    }

    #[test]
    fn sizes_and_durations_are_short() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(12_595), "12.3 KiB");
        assert_eq!(bytes(4 * 1024 * 1024), "4.0 MiB");
        assert_eq!(duration(Duration::from_millis(850)), "850ms");
        assert_eq!(duration(Duration::from_secs(184)), "3m4s");
        assert_eq!(duration(Duration::from_secs(3600)), "1h0m");
        assert_eq!(duration(Duration::from_secs(3 * 86400 + 4 * 3600)), "3d4h");
    }
}
