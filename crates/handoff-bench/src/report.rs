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
        "proxy peak memory MiB",
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
                mib(row.proxy_peak_memory),
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

/// Prints the `memory` table and writes `memory.json`, `memory.txt` and `memory.svg`.
/// `rows` pairs each row with its body size.
pub(crate) fn memory(
    uploads: usize,
    rows: &[(u64, Row)],
    notes: &[String],
) -> Result<(), BoxError> {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "memory: {uploads} uploads in flight, one origin restarted a third of the way in; peak RSS by body size"
    );
    for note in notes {
        let _ = writeln!(text, "  {note}");
    }
    let header = [
        "contender",
        "body MiB",
        "ok",
        "proxy peak memory MiB",
        "growth per upload vs smallest body, MiB",
        "proxy disk writes MiB",
        "origin peak RSS MiB",
        "retried",
    ];
    let mut table: Vec<Vec<String>> = vec![header.iter().map(|h| (*h).to_owned()).collect()];
    for (size, row) in rows {
        let smallest = rows
            .iter()
            .filter(|(_, r)| r.contender == row.contender)
            .min_by_key(|(s, _)| *s)
            .map(|(_, r)| r.proxy_peak_memory)
            .unwrap_or(row.proxy_peak_memory);
        let growth = row.proxy_peak_memory.saturating_sub(smallest) as f64 / uploads.max(1) as f64;
        table.push(vec![
            row.contender.clone(),
            mib(*size),
            format!("{}/{}", row.ok, row.uploads),
            mib(row.proxy_peak_memory),
            format!("{:.2}", growth / MIB),
            mib(row.proxy_disk_writes),
            mib(row.origin_peak_rss),
            row.retried.to_string(),
        ]);
    }
    text.push_str(&format_table(&table));
    for (size, row) in rows.iter().filter(|(_, r)| !r.errors.is_empty()) {
        let _ = writeln!(
            text,
            "  {} at {} MiB errors: {}",
            row.contender,
            mib(*size),
            row.errors.join(" | ")
        );
    }
    print!("{text}");

    let dir = out_dir()?;
    let json: Vec<_> = rows
        .iter()
        .map(|(size, row)| serde_json::json!({ "body_bytes": size, "row": row }))
        .collect();
    let json = serde_json::json!({ "uploads": uploads, "notes": notes, "rows": json });
    std::fs::write(dir.join("memory.json"), serde_json::to_vec_pretty(&json)?)?;
    std::fs::write(dir.join("memory.txt"), &text)?;
    memory_chart(&dir.join("memory.svg"), uploads, rows)?;
    println!(
        "\nwrote {}, memory.txt and memory.svg",
        dir.join("memory.json").display()
    );
    Ok(())
}

/// Proxy peak RSS against body size, a line per contender.
fn memory_chart(
    path: &std::path::Path,
    uploads: usize,
    rows: &[(u64, Row)],
) -> Result<(), BoxError> {
    let mut contenders: Vec<&str> = Vec::new();
    for (_, row) in rows {
        if !contenders.contains(&row.contender.as_str()) {
            contenders.push(&row.contender);
        }
    }
    let colors = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
    ];
    let largest = rows.iter().map(|(s, _)| *s).max().unwrap_or(1) as f64 / MIB;
    let highest = rows
        .iter()
        .map(|(_, r)| r.proxy_peak_memory)
        .max()
        .unwrap_or(1) as f64
        / MIB;
    let root = SVGBackend::new(path, (960, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("proxy peak memory (PSS) against body size, {uploads} uploads in flight"),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..largest * 1.05, 0.0..highest * 1.1)?;
    chart
        .configure_mesh()
        .x_desc("body size, MiB")
        .y_desc("proxy peak memory, MiB")
        .draw()?;
    for (i, contender) in contenders.iter().enumerate() {
        let color = colors[i % colors.len()];
        let points: Vec<(f64, f64)> = rows
            .iter()
            .filter(|(_, r)| r.contender == *contender)
            .map(|(s, r)| (*s as f64 / MIB, r.proxy_peak_memory as f64 / MIB))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(*contender)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
        chart.draw_series(
            points
                .into_iter()
                .map(|p| Circle::new(p, 3, color.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Median of `values` (the mean of the middle two for an even count); zero for none.
fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

/// One contender's summary over the rounds of an `overhead` part.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Summary {
    pub(crate) part: &'static str,
    pub(crate) contender: String,
    pub(crate) median_rate: f64,
    pub(crate) min_rate: f64,
    pub(crate) max_rate: f64,
    /// Median over rounds of this round's rate / the baseline's in the same round.
    pub(crate) paired_ratio: f64,
    pub(crate) median_p99: Duration,
    /// Median CPU per unit (see `overhead::Sample::cpu_per_unit`), and its median ratio to
    /// the baseline's in the same round.
    pub(crate) median_cpu: Option<f64>,
    pub(crate) paired_cpu_ratio: Option<f64>,
    pub(crate) failures: usize,
}

/// The contenders of `part` in first-seen order, each summarized against `baseline`.
pub(crate) fn summarize(
    samples: &[crate::overhead::Sample],
    part: &'static str,
    baseline: &str,
) -> Vec<Summary> {
    let part_samples: Vec<_> = samples.iter().filter(|s| s.part == part).collect();
    let mut labels: Vec<&str> = Vec::new();
    for sample in &part_samples {
        if !labels.contains(&sample.contender.as_str()) {
            labels.push(&sample.contender);
        }
    }
    let base_of = |round: usize| {
        part_samples
            .iter()
            .find(|s| s.round == round && s.contender == baseline)
            .map(|s| s.rate)
    };
    let base_cpu_of = |round: usize| {
        part_samples
            .iter()
            .find(|s| s.round == round && s.contender == baseline)
            .and_then(|s| s.cpu_per_unit)
    };
    labels
        .iter()
        .map(|label| {
            let mine: Vec<_> = part_samples
                .iter()
                .filter(|s| s.contender == *label)
                .collect();
            let mut rates: Vec<f64> = mine.iter().map(|s| s.rate).collect();
            let mut ratios: Vec<f64> = mine
                .iter()
                .filter_map(|s| base_of(s.round).filter(|b| *b > 0.0).map(|b| s.rate / b))
                .collect();
            let mut p99s: Vec<f64> = mine.iter().map(|s| s.p99.as_secs_f64()).collect();
            let mut cpus: Vec<f64> = mine.iter().filter_map(|s| s.cpu_per_unit).collect();
            let mut cpu_ratios: Vec<f64> = mine
                .iter()
                .filter_map(|s| {
                    let base = base_cpu_of(s.round).filter(|b| *b > 0.0)?;
                    Some(s.cpu_per_unit? / base)
                })
                .collect();
            Summary {
                part,
                contender: (*label).to_owned(),
                median_rate: median(&mut rates),
                min_rate: rates.first().copied().unwrap_or(0.0),
                max_rate: rates.last().copied().unwrap_or(0.0),
                paired_ratio: median(&mut ratios),
                median_p99: Duration::from_secs_f64(median(&mut p99s)),
                median_cpu: (!cpus.is_empty()).then(|| median(&mut cpus)),
                paired_cpu_ratio: (!cpu_ratios.is_empty()).then(|| median(&mut cpu_ratios)),
                failures: mine.iter().map(|s| s.failures).sum(),
            }
        })
        .collect()
}

/// Prints the `overhead` tables and writes `overhead.json`, `overhead.txt` and
/// `overhead.svg`.
pub(crate) fn overhead(
    samples: &[crate::overhead::Sample],
    notes: &[String],
) -> Result<(), BoxError> {
    let small = summarize(samples, "a", "origin bare (baseline)");
    let large = summarize(samples, "b", "ours, --no-replay (baseline)");
    let rounds = samples.iter().map(|s| s.round + 1).max().unwrap_or(0);
    let mut text = String::new();
    let _ = writeln!(text, "overhead: {rounds} rounds, contenders interleaved; medians, spread, and paired ratios to the baseline of the same round");
    for note in notes {
        let _ = writeln!(text, "  {note}");
    }
    let _ = writeln!(text, "\n(a) small POSTs (1 KiB) straight to one origin:");
    let mut table = vec![[
        "origin",
        "requests/s",
        "rounds min-max",
        "paired vs baseline",
        "p99 ms",
        "origin CPU us/request",
        "CPU vs baseline",
        "failures",
    ]
    .map(str::to_owned)
    .to_vec()];
    for s in &small {
        table.push(vec![
            s.contender.clone(),
            format!("{:.0}", s.median_rate),
            format!("{:.0}-{:.0}", s.min_rate, s.max_rate),
            format!("x{:.3}", s.paired_ratio),
            format!("{:.1}", s.median_p99.as_secs_f64() * 1000.0),
            s.median_cpu.map_or("-".to_owned(), |c| format!("{c:.1}")),
            s.paired_cpu_ratio
                .map_or("-".to_owned(), |c| format!("x{c:.3}")),
            s.failures.to_string(),
        ]);
    }
    text.push_str(&format_table(&table));
    let _ = writeln!(text, "\n(b) large unthrottled uploads:");
    let mut table = vec![[
        "carrier",
        "MiB/s",
        "rounds min-max",
        "paired vs baseline",
        "slowest upload s",
        "proxy CPU s/GiB",
        "CPU vs baseline",
        "failures",
    ]
    .map(str::to_owned)
    .to_vec()];
    for s in &large {
        table.push(vec![
            s.contender.clone(),
            format!("{:.0}", s.median_rate),
            format!("{:.0}-{:.0}", s.min_rate, s.max_rate),
            format!("x{:.3}", s.paired_ratio),
            secs(s.median_p99),
            s.median_cpu.map_or("-".to_owned(), |c| format!("{c:.3}")),
            s.paired_cpu_ratio
                .map_or("-".to_owned(), |c| format!("x{c:.3}")),
            s.failures.to_string(),
        ]);
    }
    text.push_str(&format_table(&table));
    print!("{text}");

    let dir = out_dir()?;
    let json =
        serde_json::json!({ "notes": notes, "samples": samples, "small": small, "large": large });
    std::fs::write(dir.join("overhead.json"), serde_json::to_vec_pretty(&json)?)?;
    std::fs::write(dir.join("overhead.txt"), &text)?;
    let bars: Vec<(String, f64)> = small
        .iter()
        .chain(&large)
        .map(|s| (format!("({}) {}", s.part, s.contender), s.paired_ratio))
        .collect();
    ratio_chart(
        &dir.join("overhead.svg"),
        "paired ratio to the baseline of each part",
        &bars,
    )?;
    println!(
        "\nwrote {}, overhead.txt and overhead.svg",
        dir.join("overhead.json").display()
    );
    Ok(())
}

/// Horizontal bars, one per label.
fn ratio_chart(
    path: &std::path::Path,
    title: &str,
    bars: &[(String, f64)],
) -> Result<(), BoxError> {
    let root = SVGBackend::new(path, (960, 40 + 36 * bars.len() as u32 + 60)).into_drawing_area();
    root.fill(&WHITE)?;
    let most = bars.iter().map(|(_, v)| *v).fold(1.0, f64::max) * 1.1;
    let count = bars.len().max(1);
    let labels: Vec<String> = bars.iter().map(|(l, _)| l.clone()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(320)
        .build_cartesian_2d(0.0..most, 0.0..count as f64)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(count * 2 + 1)
        .y_label_formatter(&move |y| {
            let i = y.floor() as usize;
            let centred = (y - y.floor() - 0.5).abs() < 0.01;
            match labels.get(count.saturating_sub(1).saturating_sub(i)) {
                Some(label) if centred && i < count => label.clone(),
                _ => String::new(),
            }
        })
        .x_desc("x baseline (1.0 = as fast)")
        .draw()?;
    let color = RGBColor(31, 119, 180);
    chart.draw_series(bars.iter().enumerate().map(|(i, (_, value))| {
        let row = (count - 1 - i) as f64;
        Rectangle::new([(0.0, row + 0.2), (*value, row + 0.8)], color.filled())
    }))?;
    chart.draw_series(LineSeries::new(
        vec![(1.0, 0.0), (1.0, count as f64)],
        BLACK.stroke_width(1),
    ))?;
    root.present()?;
    Ok(())
}

/// Prints the `resume` table and writes `resume.json`, `resume.txt` and `resume.svg`.
pub(crate) fn resume(rows: &[crate::resume::ResumeRow]) -> Result<(), BoxError> {
    let mut text = String::new();
    if let Some(first) = rows.first() {
        let _ = writeln!(
            text,
            "resume: {} uploads of {} MiB, one after the other, through a relay that cuts each upload's connections {} times",
            first.uploads,
            mib(first.size),
            first.cuts_per_upload
        );
    }
    let header = [
        "client",
        "ok",
        "cuts made",
        "bytes read by the relay / uploaded",
        "re-sent by the client's count, MiB",
        "wall p50 s",
        "handler runs per upload",
    ];
    let mut table = vec![header.map(str::to_owned).to_vec()];
    for row in rows {
        let uploaded = (row.uploads as u64 * row.size).max(1);
        table.push(vec![
            row.client.clone(),
            format!("{}/{}", row.ok, row.uploads),
            row.cuts_made.to_string(),
            format!("{:.3}", row.bytes_carried as f64 / uploaded as f64),
            row.client_resent
                .map_or("all after each cut".to_owned(), mib),
            secs(row.wall_p50),
            format!("{:.2}", row.handler_runs as f64 / row.uploads.max(1) as f64),
        ]);
    }
    text.push_str(&format_table(&table));
    print!("{text}");
    let dir = out_dir()?;
    std::fs::write(dir.join("resume.json"), serde_json::to_vec_pretty(&rows)?)?;
    std::fs::write(dir.join("resume.txt"), &text)?;
    let bars: Vec<(String, f64)> = rows
        .iter()
        .map(|r| {
            let uploaded = (r.uploads as u64 * r.size).max(1) as f64;
            (r.client.clone(), r.bytes_carried as f64 / uploaded)
        })
        .collect();
    ratio_chart(
        &dir.join("resume.svg"),
        "bytes carried per byte uploaded",
        &bars,
    )?;
    println!(
        "\nwrote {}, resume.txt and resume.svg",
        dir.join("resume.json").display()
    );
    Ok(())
}
