//! A line chart as a standalone SVG: hit ratio (%) against cache size (% of the distinct keys,
//! on a log scale), one line per policy. Hand-written to keep the simulator free of a plotting
//! dependency; the SVG opens in any browser.

use std::fmt::Write;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 36.0;
const BOTTOM: f64 = 48.0;

/// Distinct colours (Okabe-Ito, then greys) for up to 12 lines.
const COLOURS: [&str; 12] = [
    "#000000", "#e69f00", "#56b4e9", "#009e73", "#f0e442", "#0072b2", "#d55e00", "#cc79a7",
    "#999999", "#7f3c8d", "#11a579", "#3969ac",
];

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The chart: `sizes` are the x values (percentages, > 0), each series one y value (hit ratio
/// in percent) per size. The first series (Belady's optimum) is drawn dashed.
pub(crate) fn chart(title: &str, sizes: &[f64], series: &[(String, Vec<f64>)]) -> String {
    let (x0, x1) = (LEFT, WIDTH - RIGHT);
    let (y0, y1) = (HEIGHT - BOTTOM, TOP);
    let lo = sizes
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .max(1e-9);
    let hi = sizes.iter().copied().fold(0.0, f64::max).max(lo * 1.0001);
    let x = |size: f64| x0 + (size.ln() - lo.ln()) / (hi.ln() - lo.ln()) * (x1 - x0);
    // The y axis: 0 to the next multiple of 10 above the highest value.
    let top = series
        .iter()
        .flat_map(|(_, ys)| ys.iter().copied())
        .fold(0.0_f64, f64::max);
    let ymax = ((top / 10.0).ceil() * 10.0).clamp(10.0, 100.0);
    let y = |ratio: f64| y0 - ratio / ymax * (y0 - y1);

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        svg,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{}" y="20" text-anchor="middle" font-size="14">{}</text>"#,
        (x0 + x1) / 2.0,
        escape(title)
    );
    // Grid and ticks.
    let step = if ymax >= 40.0 { 10 } else { 5 };
    for tick in (0..=ymax as u32).step_by(step) {
        let ty = y(f64::from(tick));
        let _ = writeln!(
            svg,
            r##"<line x1="{x0}" y1="{ty:.1}" x2="{x1}" y2="{ty:.1}" stroke="#e0e0e0"/><text x="{}" y="{:.1}" text-anchor="end">{tick}</text>"##,
            x0 - 6.0,
            ty + 4.0
        );
    }
    for &size in sizes {
        let tx = x(size);
        let _ = writeln!(
            svg,
            r##"<line x1="{tx:.1}" y1="{y0}" x2="{tx:.1}" y2="{y1}" stroke="#e0e0e0"/><text x="{tx:.1}" y="{}" text-anchor="middle">{size}%</text>"##,
            y0 + 16.0
        );
    }
    let _ = writeln!(
        svg,
        r##"<rect x="{x0}" y="{y1}" width="{}" height="{}" fill="none" stroke="#444"/>"##,
        x1 - x0,
        y0 - y1
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">cache size (% of distinct keys, log scale)</text>"#,
        (x0 + x1) / 2.0,
        HEIGHT - 10.0
    );
    let _ = writeln!(
        svg,
        r#"<text transform="translate(16 {}) rotate(-90)" text-anchor="middle">hit ratio (%)</text>"#,
        (y0 + y1) / 2.0
    );
    // Lines, points and the legend.
    for (i, (name, ys)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        // Belady dashed; past the palette's twelve colours (every policy and the reference
        // models at once) the colours come round again, dotted.
        let dash = if i == 0 {
            r#" stroke-dasharray="6 4""#
        } else if i >= COLOURS.len() {
            r#" stroke-dasharray="2 3""#
        } else {
            ""
        };
        let points: Vec<String> = sizes
            .iter()
            .zip(ys)
            .map(|(&s, &r)| format!("{:.1},{:.1}", x(s), y(r)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>"#,
            points.join(" ")
        );
        for p in &points {
            let (px, py) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(
                svg,
                r#"<circle cx="{px}" cy="{py}" r="3" fill="{colour}"/>"#
            );
        }
        let ly = y1 + 10.0 + 18.0 * i as f64;
        let _ = writeln!(
            svg,
            r#"<line x1="{}" y1="{ly}" x2="{}" y2="{ly}" stroke="{colour}" stroke-width="2"{dash}/><text x="{}" y="{}">{}</text>"#,
            x1 + 12.0,
            x1 + 36.0,
            x1 + 42.0,
            ly + 4.0,
            escape(name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_polyline_per_series_with_one_point_per_size() {
        let svg = chart(
            "a <trace> & more",
            &[1.0, 10.0, 50.0],
            &[
                ("Belady".into(), vec![10.0, 40.0, 70.0]),
                ("lru".into(), vec![5.0, 30.0, 65.0]),
            ],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 6);
        assert!(svg.contains("a &lt;trace&gt; &amp; more"));
        // Log x: 10% sits at ln(10)/ln(50) of the plot's width from 1%.
        let first = svg
            .lines()
            .find(|l| l.contains("<polyline"))
            .expect("a line");
        let xs: Vec<f64> = first
            .split('"')
            .nth(1)
            .expect("points")
            .split(' ')
            .map(|p| p.split(',').next().expect("x").parse().expect("number"))
            .collect();
        let share = (xs[1] - xs[0]) / (xs[2] - xs[0]);
        assert!((share - 10f64.ln() / 50f64.ln()).abs() < 0.01, "{share}");
    }

    #[test]
    fn lines_past_the_palette_are_dotted_so_a_colour_that_comes_round_is_told_apart() {
        let series: Vec<(String, Vec<f64>)> = (0..COLOURS.len() + 3)
            .map(|i| (format!("s{i}"), vec![i as f64]))
            .collect();
        let svg = chart("many", &[1.0], &series);
        let lines: Vec<&str> = svg.lines().filter(|l| l.contains("<polyline")).collect();
        assert_eq!(lines.len(), COLOURS.len() + 3);
        assert!(lines[0].contains(r#"stroke-dasharray="6 4""#));
        assert!(
            lines[1..COLOURS.len()]
                .iter()
                .all(|l| !l.contains("dasharray"))
        );
        assert!(
            lines[COLOURS.len()..]
                .iter()
                .all(|l| l.contains(r#"stroke-dasharray="2 3""#))
        );
        // Every legend entry fits inside the picture.
        let last = svg
            .lines()
            .rev()
            .find(|l| l.contains(">s14</text>"))
            .expect("legend");
        let y: f64 = last
            .rsplit(" y=\"")
            .next()
            .and_then(|v| v.split('"').next())
            .and_then(|v| v.parse().ok())
            .expect("the legend's y");
        assert!(y < HEIGHT, "{y}");
    }
}
