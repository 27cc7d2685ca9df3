//! Bar charts of statistics tables as SVG, drawn on the server: no script, no external
//! resource, scaled to the screen (a phone at night included), with the same numbers as
//! text for screen readers (`<title>`, `<desc>`) and suppressed cells marked, never
//! guessed.

use std::fmt::Write;

/// One bar per period: a place, a category, a status, or the total.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    /// Per period, in order; `None` is suppressed.
    pub values: Vec<Option<i64>>,
}

/// Okabe–Ito: told apart with every common colour-vision deficiency.
const PALETTE: &[&str] = &[
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
];

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The chart's numbers as sentences: its text alternative.
pub fn text_alternative(title: &str, periods: &[String], series: &[Series]) -> String {
    let mut out = format!("{title}. ");
    for (i, p) in periods.iter().enumerate() {
        let cells: Vec<String> = series
            .iter()
            .map(|s| match s.values.get(i).copied().flatten() {
                Some(n) => format!("{} {n}", s.label),
                None => format!("{} suppressed", s.label),
            })
            .collect();
        let _ = write!(out, "{p}: {}. ", cells.join(", "));
    }
    out.trim_end().to_owned()
}

/// A grouped bar chart: one group per period, one bar per series.
pub fn bar_chart(title: &str, periods: &[String], series: &[Series]) -> String {
    let bars = series.len().max(1);
    let bar_w = 14.0;
    let group_w = bars as f64 * bar_w + 10.0;
    let (left, top, plot_h) = (44.0, 40.0, 180.0);
    let width = (left + 12.0 + periods.len() as f64 * group_w).max(360.0);
    let legend_rows = series.len();
    let height = top + plot_h + 56.0 + legend_rows as f64 * 18.0;
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .copied()
        .max()
        .unwrap_or(0)
        .max(5);
    let y = |v: i64| top + plot_h - (v as f64 / max as f64) * plot_h;
    let desc = text_alternative(title, periods, series);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0} {height:.0}" width="100%" role="img" aria-labelledby="t d" font-family="system-ui, sans-serif" font-size="12"><title id="t">{}</title><desc id="d">{}</desc><rect width="100%" height="100%" fill="#fff"/><text x="8" y="22" font-size="15" font-weight="bold">{}</text>"##,
        escape(title),
        escape(&desc),
        escape(title)
    );
    // Axis with its top value and zero.
    let _ = write!(
        svg,
        r##"<line x1="{left}" y1="{top}" x2="{left}" y2="{b}" stroke="#555"/><line x1="{left}" y1="{b}" x2="{r:.0}" y2="{b}" stroke="#555"/><text x="{lx}" y="{ty}" text-anchor="end">{max}</text><text x="{lx}" y="{b}" text-anchor="end">0</text>"##,
        b = top + plot_h,
        r = width - 8.0,
        lx = left - 4.0,
        ty = top + 4.0,
    );
    for (i, p) in periods.iter().enumerate() {
        let gx = left + 6.0 + i as f64 * group_w;
        for (j, s) in series.iter().enumerate() {
            let x = gx + j as f64 * bar_w;
            let colour = PALETTE[j % PALETTE.len()];
            match s.values.get(i).copied().flatten() {
                Some(v) => {
                    let _ = write!(
                        svg,
                        r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{colour}"><title>{}: {v}</title></rect>"#,
                        y(v),
                        bar_w - 2.0,
                        top + plot_h - y(v),
                        escape(&format!("{} {p}", s.label)),
                    );
                }
                None => {
                    // Suppressed: an empty dashed stub, the same for every hidden value.
                    let _ = write!(
                        svg,
                        r##"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="10" fill="none" stroke="{colour}" stroke-dasharray="2 2"><title>{}: suppressed</title></rect>"##,
                        top + plot_h - 10.0,
                        bar_w - 2.0,
                        escape(&format!("{} {p}", s.label)),
                    );
                }
            }
        }
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            gx + (group_w - 10.0) / 2.0,
            top + plot_h + 16.0,
            escape(p)
        );
    }
    let ly = top + plot_h + 40.0;
    for (j, s) in series.iter().enumerate() {
        let yy = ly + j as f64 * 18.0;
        let _ = write!(
            svg,
            r#"<rect x="8" y="{:.1}" width="12" height="12" fill="{}"/><text x="26" y="{:.1}">{}</text>"#,
            yy - 10.0,
            PALETTE[j % PALETTE.len()],
            yy,
            escape(&s.label)
        );
    }
    let _ = write!(
        svg,
        r##"<text x="{:.0}" y="{:.1}" text-anchor="end" fill="#555">dashed: suppressed (under 5, or would reveal one)</text></svg>"##,
        width - 8.0,
        ly - 20.0 + 4.0
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_escapes_its_labels_and_says_its_numbers_in_words() {
        let svg = bar_chart(
            "Observations <per> place",
            &["2026-Q1".into(), "2026-Q2".into()],
            &[Series {
                label: "Hässelby & torg".into(),
                values: vec![Some(17), None],
            }],
        );
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("Hässelby &amp; torg"));
        assert!(!svg.contains("<per>"));
        assert!(svg
            .contains("2026-Q1: Hässelby &amp; torg 17. 2026-Q2: Hässelby &amp; torg suppressed."));
    }
}
