//! The loss curves of `lstm train --loss-plot` as an SVG line chart.

/// One epoch's training loss and validation loss (if any).
pub(crate) type EpochLoss = (f64, Option<f64>);

/// The loss curves as an SVG line chart: training (solid) and validation (dashed).
pub(crate) fn svg(curve: &[EpochLoss]) -> String {
    let (w, h, pad) = (640.0, 360.0, 40.0);
    let all: Vec<f64> = curve
        .iter()
        .flat_map(|(t, v)| std::iter::once(*t).chain(*v))
        .filter(|v| v.is_finite())
        .collect();
    let max = all.iter().copied().fold(f64::MIN_POSITIVE, f64::max);
    let n = curve.len().max(2) - 1;
    let point = |k: usize, v: f64| {
        let x = pad + (w - 2.0 * pad) * k as f64 / n as f64;
        let y = h - pad - (h - 2.0 * pad) * (v / max);
        format!("{x:.1},{y:.1}")
    };
    let line = |pick: &dyn Fn(&EpochLoss) -> Option<f64>, style: &str| {
        let pts: Vec<String> = curve
            .iter()
            .enumerate()
            .filter_map(|(k, c)| pick(c).map(|v| point(k, v)))
            .collect();
        format!(
            "<polyline fill=\"none\" stroke=\"black\" {style} points=\"{}\"/>",
            pts.join(" ")
        )
    };
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\">\n\
         <text x=\"{pad}\" y=\"20\">loss per epoch (max {max:.4}): training solid, validation dashed</text>\n\
         <line x1=\"{pad}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"gray\"/>\n{}\n{}\n</svg>\n",
        h - pad,
        w - pad,
        h - pad,
        line(&|c| Some(c.0), ""),
        line(&|c| c.1, "stroke-dasharray=\"6 4\"")
    )
}
