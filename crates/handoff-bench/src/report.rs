//! What a run prints, and what it leaves under `target/bench/`: a JSON file of every row
//! and an SVG chart (plotters).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use plotters::prelude::*;

use crate::bins;
use crate::restart::{Plan, Row, Timing};
use crate::BoxError;

const MIB: f64 = 1024.0 * 1024.0;

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / MIB)
}

fn secs(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

fn out_dir() -> Result<PathBuf, BoxError> {
    let dir = bins::target_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Prints the `restart` tables and writes `restart.json` and `restart.svg`.
pub(crate) fn restart(plan: &Plan, rows: &[Row], notes: &[String]) -> Result<(), BoxError> {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "restart: {} uploads x {} MiB, each paced over {} s; three origins restarted in turn, {} s drain window each, {} s settle time before the next",
        plan.uploads,
        mib(plan.size),
        secs(plan.upload_time),
        secs(plan.drain),
        secs(plan.settle),
    );
    for note in notes {
        let _ = writeln!(text, "  {note}");
    }
    let header = [
        "contender",
        "ok",
        "failed",
        "no answer",
        "p50 s",
        "p99 s",
        "last byte -> answer, p50 s",
        "proxy peak RSS MiB",
        "proxy disk writes MiB",
        "upstream MiB",
        "client MiB to re-send",
        "retried",
    ];
    for timing in [
        Timing::Streaming,
        Timing::Forwarding,
        Timing::SlowReplacement,
    ] {
        let _ = writeln!(text, "\nrestart {}:", timing.label());
        let mut table: Vec<Vec<String>> = vec![header.iter().map(|h| (*h).to_owned()).collect()];
        for row in rows.iter().filter(|r| r.timing == timing) {
            let mut statuses: Vec<String> =
                row.failed_statuses.iter().map(u16::to_string).collect();
            statuses.dedup();
            table.push(vec![
                row.contender.clone(),
                format!("{}/{}", row.ok, row.uploads),
                if statuses.is_empty() {
                    "-".to_owned()
                } else {
                    format!("{} ({})", row.failed_statuses.len(), statuses.join(","))
                },
                row.no_response.to_string(),
                secs(row.latency_p50),
                secs(row.latency_p99),
                row.last_byte_to_answer_p50.map_or("-".to_owned(), secs),
                mib(row.proxy_peak_rss),
                mib(row.proxy_disk_writes),
                mib(row.upstream_bytes),
                mib(row.client_bytes_lost),
                row.retried.to_string(),
            ]);
        }
        text.push_str(&format_table(&table));
        for row in rows
            .iter()
            .filter(|r| r.timing == timing && !r.errors.is_empty())
        {
            let _ = writeln!(
                text,
                "  {} errors: {}",
                row.contender,
                row.errors.join(" | ")
            );
        }
    }
    print!("{text}");

    let dir = out_dir()?;
    let json = serde_json::json!({ "plan": plan, "notes": notes, "rows": rows });
    std::fs::write(dir.join("restart.json"), serde_json::to_vec_pretty(&json)?)?;
    std::fs::write(dir.join("restart.txt"), &text)?;
    chart(&dir.join("restart.svg"), rows)?;
    println!(
        "\nwrote {}, restart.txt and restart.svg",
        dir.join("restart.json").display()
    );
    Ok(())
}

fn format_table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, String::len))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| {
                if c == 0 {
                    format!("{cell:<w$}", w = widths[c])
                } else {
                    format!("{cell:>w$}", w = widths[c])
                }
            })
            .collect();
        let _ = writeln!(out, "  {}", cells.join("  "));
        if i == 0 {
            let rule: usize = widths.iter().sum::<usize>() + 2 * columns.saturating_sub(1);
            let _ = writeln!(out, "  {}", "-".repeat(rule));
        }
    }
    out
}

/// Uploads that succeeded, per contender (groups) and timing (bars).
fn chart(path: &std::path::Path, rows: &[Row]) -> Result<(), BoxError> {
    let mut contenders: Vec<&str> = Vec::new();
    for row in rows {
        if !contenders.contains(&row.contender.as_str()) {
            contenders.push(&row.contender);
        }
    }
    let timings = [
        Timing::Streaming,
        Timing::Forwarding,
        Timing::SlowReplacement,
    ];
    let colors = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
    ];
    let most = rows.iter().map(|r| r.uploads).max().unwrap_or(1) as f64;

    let root = SVGBackend::new(path, (960, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let groups = contenders.len().max(1) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "uploads that succeeded through a rolling restart",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(48)
        .build_cartesian_2d(0.0..groups, 0.0..most * 1.05)?;
    let names = contenders.clone();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(contenders.len().max(1) * 2 + 1)
        .x_label_formatter(&move |x| {
            let i = x.floor() as usize;
            let centred = (x - x.floor() - 0.5).abs() < 0.01;
            match names.get(i) {
                Some(name) if centred => (*name).to_owned(),
                _ => String::new(),
            }
        })
        .y_desc("uploads ok")
        .draw()?;
    let width = 0.8 / timings.len() as f64;
    for (t, timing) in timings.iter().enumerate() {
        let color = colors[t];
        let bars = rows
            .iter()
            .filter(|r| r.timing == *timing)
            .filter_map(|row| {
                let group = contenders.iter().position(|c| *c == row.contender)? as f64;
                let left = group + 0.1 + width * t as f64;
                Some(Rectangle::new(
                    [(left, 0.0), (left + width * 0.9, row.ok as f64)],
                    color.filled(),
                ))
            });
        chart
            .draw_series(bars)?
            .label(timing.label())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
