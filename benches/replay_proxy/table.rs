//! Printing: aligned tables and the units the bench reports in.

use std::time::Duration;

/// A table printed with aligned columns: the first column left-aligned, the others right.
#[derive(Debug)]
pub(crate) struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub(crate) fn new<I, S>(header: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row (missing cells print empty).
    pub(crate) fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// Prints the table, indented by two spaces.
    pub(crate) fn print(&self) {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut out = String::from(" ");
            for (index, width) in widths.iter().enumerate().take(columns) {
                let cell = cells.get(index).map(String::as_str).unwrap_or("");
                let pad = " ".repeat(width - cell.chars().count());
                if index == 0 {
                    out.push_str(&format!(" {cell}{pad}"));
                } else {
                    out.push_str(&format!("  {pad}{cell}"));
                }
            }
            println!("{}", out.trim_end());
        };
        line(&self.header);
        let total: usize = widths.iter().sum::<usize>() + 2 * columns.saturating_sub(1);
        println!("  {}", "-".repeat(total));
        for row in &self.rows {
            line(row);
        }
    }
}

/// `1.5 MiB`, `64.0 KiB`, `12 B`.
pub(crate) fn bytes(n: u64) -> String {
    const KIB: f64 = 1024.0;
    const MIB: f64 = 1024.0 * 1024.0;
    const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
    let x = n as f64;
    if x >= GIB {
        format!("{:.2} GiB", x / GIB)
    } else if x >= MIB {
        format!("{:.1} MiB", x / MIB)
    } else if x >= KIB {
        format!("{:.1} KiB", x / KIB)
    } else {
        format!("{n} B")
    }
}

/// A signed byte difference, `+12.0 MiB` / `-3.0 KiB`.
pub(crate) fn bytes_delta(from: u64, to: u64) -> String {
    if to >= from {
        format!("+{}", bytes(to - from))
    } else {
        format!("-{}", bytes(from - to))
    }
}

/// Milliseconds, no decimals past 100 ms.
pub(crate) fn millis(duration: Duration) -> String {
    let ms = duration.as_secs_f64() * 1000.0;
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else {
        format!("{ms:.1}")
    }
}

/// Seconds with two decimals and the unit.
pub(crate) fn secs(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}

/// `x1.23` (a ratio to the baseline), `-` when the baseline is zero.
pub(crate) fn ratio(value: f64, baseline: f64) -> String {
    if baseline > 0.0 && value.is_finite() {
        format!("x{:.2}", value / baseline)
    } else {
        "-".to_owned()
    }
}
