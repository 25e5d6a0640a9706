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

/// Several named curves (one value per epoch) as an SVG line chart with a legend.
pub(crate) fn curves_svg(curves: &[(&str, &[f64])]) -> String {
    let (w, h, pad) = (640.0, 360.0, 40.0);
    let max = curves
        .iter()
        .flat_map(|(_, c)| c.iter().copied())
        .filter(|v| v.is_finite())
        .fold(f64::MIN_POSITIVE, f64::max);
    let colours = [
        "black",
        "crimson",
        "royalblue",
        "darkgreen",
        "darkorange",
        "purple",
    ];
    let mut body = String::new();
    for (k, (name, c)) in curves.iter().enumerate() {
        let n = c.len().max(2) - 1;
        let pts: Vec<String> = c
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(e, v)| {
                let x = pad + (w - 2.0 * pad) * e as f64 / n as f64;
                let y = h - pad - (h - 2.0 * pad) * (v / max);
                format!("{x:.1},{y:.1}")
            })
            .collect();
        let colour = colours[k % colours.len()];
        body.push_str(&format!(
            "<polyline fill=\"none\" stroke=\"{colour}\" points=\"{}\"/>\n\
             <text x=\"{}\" y=\"{}\" fill=\"{colour}\">{name}</text>\n",
            pts.join(" "),
            w - pad - 90.0,
            pad + 16.0 * (k as f64 + 1.0)
        ));
    }
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\">\n\
         <text x=\"{pad}\" y=\"20\">validation loss per epoch (max {max:.4})</text>\n\
         <line x1=\"{pad}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"gray\"/>\n{body}</svg>\n",
        h - pad,
        w - pad,
        h - pad
    )
}
