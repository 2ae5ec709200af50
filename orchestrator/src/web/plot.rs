//! Plots as inline SVG (no script, no style attribute: the policy allows
//! neither; colours come from classes in the style sheet). Every label is
//! escaped; numbers are formatted here.

use super::html::esc;

const W: f64 = 600.0;
const H: f64 = 160.0;
/// Room for the axis labels.
const PAD_L: f64 = 48.0;
const PAD_B: f64 = 20.0;

/// A share (0 to 1) as a small horizontal bar.
pub fn bar(share: f64) -> String {
    let w = (share.clamp(0.0, 1.0) * 100.0).max(0.5);
    format!(
        "<svg class=\"bar\" viewBox=\"0 0 100 8\" width=\"100\" height=\"8\" role=\"img\" \
         aria-label=\"{:.0}%\"><rect width=\"{w:.1}\" height=\"8\"/></svg>",
        share * 100.0
    )
}

/// One bar of a stacked plot: its label and its parts (each with a class).
pub struct Stack<'a> {
    pub label: String,
    pub parts: Vec<(&'a str, f64)>,
}

/// Stacked bars, one per entry, left (oldest) to right.
pub fn stacked(title: &str, stacks: &[Stack<'_>], unit: &str) -> String {
    let max = stacks
        .iter()
        .map(|s| s.parts.iter().map(|p| p.1).sum::<f64>())
        .fold(0.0, f64::max)
        .max(1.0);
    let n = stacks.len().max(1) as f64;
    let step = (W - PAD_L) / n;
    let mut out = header(title, max, unit);
    for (i, s) in stacks.iter().enumerate() {
        let x = PAD_L + i as f64 * step;
        let mut y = H - PAD_B;
        let mut tip = esc(&s.label);
        for (class, v) in &s.parts {
            if *v <= 0.0 {
                continue;
            }
            let h = v / max * (H - PAD_B - 4.0);
            y -= h;
            tip.push_str(&format!(", {} {}", number(*v), esc(class)));
            out.push_str(&format!(
                "<rect class=\"{}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{h:.1}\"/>",
                esc(class),
                (step - 1.0).max(1.0)
            ));
        }
        out.push_str(&format!(
            "<rect class=\"hit\" x=\"{x:.1}\" y=\"0\" width=\"{step:.1}\" height=\"{:.1}\"><title>{tip}</title></rect>",
            H - PAD_B
        ));
    }
    out.push_str(&footer(
        stacks.first().map(|s| s.label.as_str()),
        stacks.last().map(|s| s.label.as_str()),
    ));
    out
}

/// Points joined by a line (`None`: a gap), left (oldest) to right.
pub fn line(title: &str, points: &[(String, Option<f64>)], unit: &str) -> String {
    let max = points
        .iter()
        .filter_map(|p| p.1)
        .fold(0.0, f64::max)
        .max(f64::MIN_POSITIVE);
    let n = points.len().max(2) as f64 - 1.0;
    let step = (W - PAD_L - 4.0) / n;
    let mut out = header(title, max, unit);
    let mut path = String::new();
    let mut pen_up = true;
    for (i, (label, v)) in points.iter().enumerate() {
        let Some(v) = v else {
            pen_up = true;
            continue;
        };
        let x = PAD_L + i as f64 * step;
        let y = H - PAD_B - v / max * (H - PAD_B - 4.0);
        path.push_str(&format!("{}{x:.1},{y:.1} ", if pen_up { "M" } else { "L" }));
        pen_up = false;
        out.push_str(&format!(
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"2.5\"><title>{}: {} {}</title></circle>",
            esc(label),
            number(*v),
            esc(unit)
        ));
    }
    if !path.is_empty() {
        out.push_str(&format!("<path class=\"line\" d=\"{}\"/>", path.trim_end()));
    }
    out.push_str(&footer(
        points.first().map(|p| p.0.as_str()),
        points.last().map(|p| p.0.as_str()),
    ));
    out
}

fn header(title: &str, max: f64, unit: &str) -> String {
    format!(
        "<svg class=\"plot\" viewBox=\"0 0 {W} {H}\" preserveAspectRatio=\"none\" role=\"img\" \
         aria-label=\"{t}\"><title>{t}</title>\
         <line class=\"axis\" x1=\"{PAD_L}\" y1=\"{b}\" x2=\"{W}\" y2=\"{b}\"/>\
         <line class=\"axis\" x1=\"{PAD_L}\" y1=\"0\" x2=\"{PAD_L}\" y2=\"{b}\"/>\
         <text x=\"{lx}\" y=\"12\" text-anchor=\"end\">{m}</text>\
         <text x=\"{lx}\" y=\"{b}\" text-anchor=\"end\">0</text>\
         <text x=\"{lx}\" y=\"26\" text-anchor=\"end\" class=\"unit\">{u}</text>",
        t = esc(title),
        b = H - PAD_B,
        lx = PAD_L - 4.0,
        m = number(max),
        u = esc(unit),
    )
}

fn footer(first: Option<&str>, last: Option<&str>) -> String {
    format!(
        "<text x=\"{PAD_L}\" y=\"{H}\" dy=\"-4\">{}</text>\
         <text x=\"{W}\" y=\"{H}\" dy=\"-4\" text-anchor=\"end\">{}</text></svg>",
        esc(first.unwrap_or("")),
        esc(last.unwrap_or(""))
    )
}

fn number(v: f64) -> String {
    if v >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_escape_labels_and_draw_every_point() {
        let pts = vec![
            ("<a>".to_string(), Some(1.0)),
            ("b".to_string(), None),
            ("c".to_string(), Some(3.0)),
        ];
        let s = line("t<", &pts, "s");
        assert!(s.contains("&lt;a&gt;") && !s.contains("<a>"));
        assert_eq!(s.matches("<circle").count(), 2);
        assert!(
            s.contains("d=\"M") && s.matches('M').count() >= 2,
            "a gap lifts the pen"
        );
        let st = stacked(
            "x",
            &[Stack {
                label: "d1".into(),
                parts: vec![("pass", 2.0), ("fail", 1.0)],
            }],
            "results",
        );
        assert_eq!(st.matches("class=\"pass\"").count(), 1);
        assert_eq!(st.matches("class=\"fail\"").count(), 1);
    }
}
