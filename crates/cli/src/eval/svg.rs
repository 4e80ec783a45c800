//! A small SVG writer for the experiments' plots: grouped bars with whiskers
//! and reference markers, axes, tick labels and a legend. Plain SVG 1.1 with
//! generic font families, so it needs no fonts or libraries to be written and
//! renders the same in any browser.

use std::fmt::Write as _;

/// Colours of the bar series, in order (Tableau 10: distinct, print-safe).
const PALETTE: &[&str] =
    &["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
/// Stroke styles of the marker series, in order: (colour, dash pattern).
const MARKER_STYLES: &[(&str, &str)] =
    &[("#000000", ""), ("#555555", "6,3"), ("#b00000", "2,2"), ("#005f00", "8,2,2,2")];

/// One bar per group: the value, and an optional whisker above it (e.g. p99).
#[derive(Clone, Debug)]
pub struct Bars {
    /// Legend text.
    pub label: String,
    /// Bar height per group (`None`: no bar).
    pub values: Vec<Option<f64>>,
    /// Whisker top per group (`None`: no whisker).
    pub whiskers: Vec<Option<f64>>,
}

/// A reference value per group, drawn as a horizontal line across the group.
#[derive(Clone, Debug)]
pub struct Markers {
    /// Legend text.
    pub label: String,
    /// Value per group (`None`: nothing drawn).
    pub values: Vec<Option<f64>>,
}

/// Grouped bars: one group per category on the x axis, one bar per series in each.
#[derive(Clone, Debug, Default)]
pub struct BarChart {
    /// First line of the heading.
    pub title: String,
    /// Second line of the heading (may be empty).
    pub subtitle: String,
    /// Label of the y axis.
    pub y_label: String,
    /// Categories along the x axis (a `\n` breaks a label into lines).
    pub groups: Vec<String>,
    /// Bar series.
    pub bars: Vec<Bars>,
    /// Reference-line series.
    pub markers: Vec<Markers>,
}

// Layout, in px.
const BAR_W: f64 = 14.0;
const GROUP_GAP: f64 = 36.0;
const PLOT_H: f64 = 380.0;
const LEFT: f64 = 72.0;
const TOP: f64 = 64.0;
const BOTTOM: f64 = 56.0;
const LEGEND_GAP: f64 = 24.0;
const LEGEND_LINE: f64 = 18.0;
/// Rough width of one character of 12 px sans-serif, for sizing the legend.
const CHAR_W: f64 = 6.4;

impl BarChart {
    /// The chart as an SVG document.
    pub fn to_svg(&self) -> String {
        let per_group = self.bars.len().max(1) as f64 * BAR_W;
        let longest_label = self.groups.iter().flat_map(|g| g.lines()).map(|l| l.chars().count()).max().unwrap_or(0);
        let group_w = (per_group + GROUP_GAP).max(longest_label as f64 * CHAR_W + 12.0);
        let plot_w = (self.groups.len().max(1) as f64 * group_w).max(240.0);
        let legend_items: Vec<&str> =
            self.bars.iter().map(|b| b.label.as_str()).chain(self.markers.iter().map(|m| m.label.as_str())).collect();
        let legend_w = 40.0 + legend_items.iter().map(|l| l.chars().count()).max().unwrap_or(0) as f64 * CHAR_W;
        let width = LEFT + plot_w + LEGEND_GAP + legend_w + 12.0;
        let legend_h = legend_items.len() as f64 * LEGEND_LINE;
        let height = TOP + PLOT_H.max(legend_h) + BOTTOM;

        let top_value = self.max_value();
        let (step, y_max) = nice_axis(top_value);
        let y = |v: f64| TOP + PLOT_H - (v.max(0.0) / y_max) * PLOT_H;

        let mut s = String::new();
        let _ = writeln!(s, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = writeln!(s, r#"<text x="{LEFT}" y="22" font-size="15" font-weight="bold">{}</text>"#, esc(&self.title));
        if !self.subtitle.is_empty() {
            let _ = writeln!(s, r##"<text x="{LEFT}" y="42" fill="#444">{}</text>"##, esc(&self.subtitle));
        }

        // Grid and y ticks.
        let mut v = 0.0;
        while v <= y_max + step / 2.0 {
            let ty = y(v);
            let _ = writeln!(
                s,
                r##"<line x1="{LEFT}" y1="{ty:.1}" x2="{:.1}" y2="{ty:.1}" stroke="#e4e4e4"/>"##,
                LEFT + plot_w
            );
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                LEFT - 6.0,
                ty + 4.0,
                fmt_tick(v, step)
            );
            v += step;
        }
        // Axes.
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{:.1}" stroke="#000"/><line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#000"/>"##,
            TOP + PLOT_H,
            TOP + PLOT_H,
            LEFT + plot_w,
            TOP + PLOT_H
        );
        let _ = writeln!(
            s,
            r#"<text transform="translate(18,{:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            TOP + PLOT_H / 2.0,
            esc(&self.y_label)
        );

        for (g, name) in self.groups.iter().enumerate() {
            let gx = LEFT + (group_w - per_group) / 2.0 + g as f64 * group_w;
            for (b, bars) in self.bars.iter().enumerate() {
                let colour = PALETTE[b % PALETTE.len()];
                let x = gx + b as f64 * BAR_W;
                let cx = x + BAR_W / 2.0;
                if let Some(val) = bars.values.get(g).copied().flatten().filter(|v| v.is_finite()) {
                    let _ = writeln!(
                        s,
                        r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{colour}"><title>{}: {}: {val:.1}</title></rect>"#,
                        y(val),
                        BAR_W - 2.0,
                        (TOP + PLOT_H - y(val)).max(0.0),
                        esc(&bars.label),
                        esc(name)
                    );
                    if let Some(w) = bars.whiskers.get(g).copied().flatten().filter(|w| w.is_finite() && *w > val) {
                        let cx = cx - 1.0;
                        let _ = writeln!(
                            s,
                            r##"<path d="M{cx:.1} {:.1} V{:.1} M{:.1} {:.1} H{:.1}" stroke="#222" fill="none"/>"##,
                            y(val),
                            y(w),
                            cx - 4.0,
                            y(w),
                            cx + 4.0
                        );
                    }
                }
            }
            for (m, markers) in self.markers.iter().enumerate() {
                let (colour, dash) = MARKER_STYLES[m % MARKER_STYLES.len()];
                if let Some(val) = markers.values.get(g).copied().flatten().filter(|v| v.is_finite()) {
                    let _ = writeln!(
                        s,
                        r#"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"><title>{}: {}: {val:.1}</title></line>"#,
                        gx - 6.0,
                        y(val),
                        gx + per_group + 4.0,
                        y(val),
                        esc(&markers.label),
                        esc(name)
                    );
                }
            }
            let cx = gx + per_group / 2.0;
            let _ = write!(s, r#"<text x="{cx:.1}" y="{:.1}" text-anchor="middle">"#, TOP + PLOT_H + 20.0);
            for (i, line) in name.lines().enumerate() {
                let dy = if i == 0 { 0.0 } else { 15.0 };
                let _ = write!(s, r#"<tspan x="{cx:.1}" dy="{dy}">{}</tspan>"#, esc(line));
            }
            let _ = writeln!(s, "</text>");
        }

        // Legend.
        let lx = LEFT + plot_w + LEGEND_GAP;
        for (i, label) in legend_items.iter().enumerate() {
            let ly = TOP + i as f64 * LEGEND_LINE;
            if i < self.bars.len() {
                let _ = writeln!(
                    s,
                    r#"<rect x="{lx:.1}" y="{:.1}" width="14" height="10" fill="{}"/>"#,
                    ly,
                    PALETTE[i % PALETTE.len()]
                );
            } else {
                let (colour, dash) = MARKER_STYLES[(i - self.bars.len()) % MARKER_STYLES.len()];
                let _ = writeln!(
                    s,
                    r#"<line x1="{lx:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/>"#,
                    ly + 5.0,
                    lx + 22.0,
                    ly + 5.0
                );
            }
            let _ = writeln!(s, r#"<text x="{:.1}" y="{:.1}">{}</text>"#, lx + 28.0, ly + 10.0, esc(label));
        }
        s.push_str("</svg>\n");
        s
    }

    /// Largest finite value, whisker or marker (0 when there is none).
    fn max_value(&self) -> f64 {
        let bars = self.bars.iter().flat_map(|b| b.values.iter().chain(b.whiskers.iter()));
        let markers = self.markers.iter().flat_map(|m| m.values.iter());
        bars.chain(markers).flatten().copied().filter(|v| v.is_finite()).fold(0.0, f64::max)
    }
}

/// A tick step of 1, 2 or 5 × 10^k giving 4 to 10 ticks, and the axis top
/// (a multiple of the step at or above `max`).
fn nice_axis(max: f64) -> (f64, f64) {
    if max <= 0.0 || !max.is_finite() {
        return (1.0, 1.0);
    }
    let raw = max / 6.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    (step, (max / step).ceil() * step)
}

fn fmt_tick(v: f64, step: f64) -> String {
    if step >= 1.0 {
        format!("{v:.0}")
    } else {
        let decimals = (-step.log10().floor()) as usize;
        format!("{v:.decimals$}")
    }
}

/// Escape text for SVG content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart() -> BarChart {
        BarChart {
            title: "t <&>".into(),
            subtitle: "s".into(),
            y_label: "ms".into(),
            groups: vec!["us-east-1".into(), "ap-south-1".into()],
            bars: vec![Bars {
                label: "a 0%".into(),
                values: vec![Some(100.0), None],
                whiskers: vec![Some(150.0), None],
            }],
            markers: vec![Markers { label: "ref".into(), values: vec![Some(90.0), Some(420.0)] }],
        }
    }

    #[test]
    fn draws_bars_whiskers_markers_and_escapes_text() {
        let s = chart().to_svg();
        assert!(s.starts_with("<?xml") && s.contains("<svg") && s.trim_end().ends_with("</svg>"));
        assert!(s.contains("t &lt;&amp;&gt;") && !s.contains("t <&>"));
        assert!(s.contains(">us-east-1</tspan>") && s.contains(">ap-south-1</tspan>"));
        assert_eq!(s.matches("<rect x=").count(), 2, "one bar and one legend swatch");
        assert_eq!(s.matches("<path").count(), 1, "one whisker");
        assert_eq!(s.matches("<title>ref:").count(), 2, "a marker per group");
        // The axis reaches above the largest marker, in round steps.
        assert!(s.contains(">500</text>") && s.contains(">400</text>") && !s.contains(">600</text>"), "{s}");
    }

    #[test]
    fn axis_steps_are_round() {
        assert_eq!(nice_axis(482.0), (100.0, 500.0));
        assert_eq!(nice_axis(0.7), (0.2, 0.8));
        assert_eq!(nice_axis(0.0), (1.0, 1.0));
        assert_eq!(nice_axis(f64::NAN), (1.0, 1.0));
        assert_eq!(fmt_tick(0.4, 0.2), "0.4");
    }

    #[test]
    fn empty_chart_is_still_valid() {
        let s = BarChart::default().to_svg();
        assert!(s.contains("<svg") && s.contains("</svg>"));
    }
}
