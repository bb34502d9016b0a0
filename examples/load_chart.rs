//! The chart of a `load-tests/run` result: for each throughput scenario, relurl
//! beside its reference (left), and the p99 latencies beside the reference's
//! (right). Text is drawn with DejaVu Sans or Liberation Sans, whichever the
//! machine has (Debian: fonts-dejavu-core).
//!
//!   cargo run --release --example load_chart -- load-tests/results/2026-11-30.json out.png

use plotters::{prelude::*, style::FontStyle};
use serde_json::Value;

const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/Library/Fonts/Arial.ttf",
];
const OURS: RGBColor = RGBColor(0x25, 0x63, 0xeb);
const REFERENCE: RGBColor = RGBColor(0x9c, 0xa3, 0xaf);

/// One scenario's bars: relurl's value and the reference's, if any.
struct Bars {
    label: String,
    ours: f64,
    reference: Option<f64>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(input), Some(output)) = (args.next(), args.next()) else {
        return Err("usage: load_chart RESULT.json OUT.png".into());
    };
    let font = FONTS
        .iter()
        .find_map(|path| std::fs::read(path).ok())
        .ok_or("no TrueType font found (install fonts-dejavu-core)")?;
    // plotters keeps the registered font for the life of the process.
    plotters::style::register_font("sans-serif", FontStyle::Normal, Box::leak(font.into()))
        .map_err(|_| "the font could not be read")?;

    let result: Value = serde_json::from_str(&std::fs::read_to_string(&input)?)?;
    let rows = result["rows"].as_array().ok_or("no rows in the result")?;
    let per_sec = |r: &&Value| r["unit"].as_str().is_some_and(|u| u.ends_with("/s"));
    let throughput: Vec<Bars> = rows
        .iter()
        .filter(per_sec)
        .map(|r| Bars {
            label: r["scenario"].as_str().unwrap_or("?").to_string(),
            ours: r["value"].as_f64().unwrap_or(0.0),
            reference: r["reference"].as_f64(),
        })
        .collect();
    let latency: Vec<Bars> = rows
        .iter()
        .filter(|r| r["p99_ms"].is_number())
        .map(|r| Bars {
            label: r["scenario"].as_str().unwrap_or("?").to_string(),
            ours: r["p99_ms"].as_f64().unwrap_or(0.0),
            reference: r["reference_p99_ms"].as_f64(),
        })
        .collect();

    let root = BitMapBackend::new(&output, (1400, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    let title = format!(
        "relurl load test, {} ({} cores) — blue: relurl, grey: reference",
        result["date"].as_str().unwrap_or(""),
        result["machine"]["cores"]
    );
    let root = root.titled(&title, ("sans-serif", 22))?;
    let (left, right) = root.split_horizontally(700);
    panel(&left, "throughput per second", &throughput)?;
    panel(&right, "p99 latency, ms", &latency)?;
    root.present()?;
    println!("wrote {output}");
    Ok(())
}

/// Horizontal grouped bars, one group per scenario.
fn panel(
    area: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    caption: &str,
    bars: &[Bars],
) -> Result<(), Box<dyn std::error::Error>> {
    let max = bars
        .iter()
        .flat_map(|b| [Some(b.ours), b.reference])
        .flatten()
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let groups = bars.len().max(1) as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(10)
        .build_cartesian_2d(0.0..max * 1.15, 0.0..groups)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_label_formatter(&|x| number(*x))
        .label_style(("sans-serif", 13))
        .draw()?;
    for (i, bar) in bars.iter().enumerate() {
        // Group i sits at the top for i = 0: its label, relurl's bar, the reference's.
        let base = groups - i as f64 - 1.0;
        chart.draw_series([Text::new(
            bar.label.clone(),
            (max * 0.005, base + 0.95),
            ("sans-serif", 14),
        )])?;
        chart.draw_series([Rectangle::new(
            [(0.0, base + 0.42), (bar.ours, base + 0.72)],
            OURS.filled(),
        )])?;
        chart.draw_series([Text::new(
            number(bar.ours),
            (bar.ours, base + 0.66),
            ("sans-serif", 12),
        )])?;
        if let Some(reference) = bar.reference {
            chart.draw_series([Rectangle::new(
                [(0.0, base + 0.08), (reference, base + 0.38)],
                REFERENCE.filled(),
            )])?;
            chart.draw_series([Text::new(
                number(reference),
                (reference, base + 0.32),
                ("sans-serif", 12),
            )])?;
        }
    }
    Ok(())
}

fn number(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}
