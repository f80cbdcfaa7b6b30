//! The printed report: the environment, then one table per row of the bench.

use std::path::Path;

use crate::rig::Rig;
use crate::table::{self, Table};
use crate::throughput::Summary;
use crate::{nginx, probe, restart, Plan, GIB, KIB, MIB};

/// What the numbers were measured on.
pub(crate) fn print_environment(rig: &Rig, plan: &Plan, nginx_bin: Option<&Path>, sha256: f64) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|model| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|text| text.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned());
    let profile = if cfg!(debug_assertions) {
        "debug assertions ON: not an optimised build, numbers are not representative"
    } else {
        "optimised (debug assertions off; `cargo bench` uses the release settings)"
    };
    let nginx = match nginx_bin {
        Some(bin) => format!(
            "{} ({})",
            bin.display(),
            nginx::version(bin).unwrap_or_else(|| "version unknown".to_owned())
        ),
        None => "not installed: its rows are skipped".to_owned(),
    };
    println!(
        "replay_proxy bench, tower-handoff {}",
        env!("CARGO_PKG_VERSION")
    );
    println!(
        "  cpu       {cpu}, {} cores available to the process",
        rig.workers
    );
    println!("  os        Linux {kernel}");
    println!("  build     {profile}");
    println!(
        "  runtimes  proxy: own tokio runtime, {} workers; clients + origins: another, {} \
         workers; all on 127.0.0.1",
        rig.workers, rig.workers
    );
    println!(
        "  sha256    {:.0} MiB/s on one core (sha2 crate; {:.3} s/GiB)",
        sha256 / MIB as f64,
        GIB as f64 / sha256
    );
    println!(
        "  memory    heap counted by a global allocator wrapper (peak_alloc over the system \
         allocator)"
    );
    println!("  nginx     {nginx}");
    println!(
        "  load      {} (1/5/15 min load average before the run; other work on the machine \
         adds noise)",
        probe::load_average().unwrap_or_else(|| "unknown".to_owned())
    );
    println!(
        "  mode      {}",
        if plan.quick {
            "--quick (smaller sizes)"
        } else {
            "full"
        }
    );
    println!();
}

/// Row 1 (and row 4, nginx): one line per target, ratios against the first.
pub(crate) fn print_throughput(plan: &Plan, summaries: &[Summary], sha256: f64) {
    let load = plan.load;
    println!(
        "Row 1. Throughput: {} concurrent uploads x {} (unthrottled, {} frames, HTTP/1.1, \
         2 origins, no restarts)",
        load.uploads,
        table::bytes(load.size),
        table::bytes(load.chunk as u64)
    );
    println!(
        "       {} measured rounds after 1 warm-up round, targets interleaved (each round starts \
         with another); MiB/s over all rounds; paired vs base: median over rounds of MiB/s / \
         baseline's MiB/s in the same round; latency over {} uploads per row",
        plan.rounds,
        plan.rounds * load.uploads
    );
    let Some(base) = summaries.first() else {
        return;
    };
    let mut rows = Table::new([
        "proxy",
        "MiB/s",
        "rounds min-max",
        "paired vs base",
        "p50 ms",
        "p99 ms",
        "proxy CPU s/GiB",
        "vs base",
        "all CPU s/GiB",
        "intact",
    ]);
    for summary in summaries {
        let (lo, hi) = summary.mib_per_sec_range();
        let latencies = summary.latencies();
        let (ok, total) = summary.succeeded();
        rows.row([
            summary.label.clone(),
            format!("{:.0}", summary.mib_per_sec()),
            format!("{lo:.0}-{hi:.0}"),
            summary
                .paired_ratio(base)
                .map_or_else(|| "-".to_owned(), |r| format!("x{r:.2}")),
            table::millis(probe::quantile(&latencies, 0.5)),
            table::millis(probe::quantile(&latencies, 0.99)),
            format!("{:.3}", summary.proxy_cpu_per_gib()),
            table::ratio(summary.proxy_cpu_per_gib(), base.proxy_cpu_per_gib()),
            format!("{:.3}", summary.all_cpu_per_gib()),
            format!("{ok}/{total}"),
        ]);
    }
    rows.print();
    println!(
        "  proxy CPU: the proxy runtime's threads (nginx rows: nginx's master + workers). all \
         CPU: this whole process (clients and origins, which hash every byte with SHA-256, + \
         proxy), plus nginx on its rows. CPU from /proc. intact: 200 with the \
         right length and SHA-256."
    );
    if let Some(layer) = summaries.get(1) {
        let base_cpu = base.proxy_cpu_per_gib();
        let layer_cpu = layer.proxy_cpu_per_gib();
        println!(
            "  ReplayLayer overhead (counting + keyed HighwayHash tag of every forwarded byte): \
             throughput {:+.1}%, proxy CPU {:+.3} s/GiB ({:+.1}%); for scale, SHA-256 (which \
             the layer used before) is {:.3} s/GiB here",
            layer.paired_ratio(base).map_or(0.0, |r| (r - 1.0) * 100.0),
            layer_cpu - base_cpu,
            percent(layer_cpu, base_cpu),
            GIB as f64 / sha256,
        );
    }
    if summaries.iter().any(|s| s.label.starts_with("nginx")) {
        println!(
            "  nginx: worker_processes = cores, upstream keepalive 32, proxy_http_version 1.1, \
             access log off; with default request buffering it reads each body (to temp files \
             past client_body_buffer_size) before it connects upstream."
        );
    }
    let replays: u64 = summaries.iter().map(Summary::replays).sum();
    if replays > 0 {
        println!("  note: {replays} replays happened although no origin restarted");
    }
}

/// Row 2: what our targets held, then what a proxy replaying from its own copy would hold.
pub(crate) fn print_memory(plan: &Plan, ours: &[Summary], held: &[Option<u64>]) {
    let load = plan.load;
    let in_flight = load.in_flight_bytes();
    println!(
        "Row 2. Memory, same batches as row 1 ({} uploads x {} in flight)",
        load.uploads,
        table::bytes(load.size)
    );
    let median_max = |value: Option<(u64, u64)>| match value {
        Some((median, max)) => format!("{} ({})", table::bytes(median), table::bytes(max)),
        None => "n/a".to_owned(),
    };
    let base_heap = ours.first().and_then(Summary::heap_growth);
    let mut measured = Table::new([
        "proxy (measured, per batch)",
        "layer max_held_bytes",
        "peak heap growth, median (max)",
        "heap vs base",
        "peak RSS growth, median (max)",
    ]);
    for (summary, held) in ours.iter().zip(held) {
        let versus = match (base_heap, summary.heap_growth()) {
            (Some((base, _)), Some((median, _))) => table::bytes_delta(base, median),
            _ => "-".to_owned(),
        };
        measured.row([
            summary.label.clone(),
            held.map_or_else(|| "-".to_owned(), table::bytes),
            median_max(summary.heap_growth()),
            versus,
            median_max(summary.rss_growth()),
        ]);
    }
    measured.print();
    println!(
        "  whole process (clients, origins, proxy). heap: live bytes counted by the global \
         allocator, peak minus value at batch start. RSS: VmHWM (reset per batch through \
         /proc/self/clear_refs) minus VmRSS at batch start; it understates, since the \
         allocator reuses pages kept resident from earlier batches. max_held_bytes: \
         ReplayStats, peak of body bytes inside the layer at one instant, all requests \
         together."
    );
    println!();

    let layer = held.iter().flatten().copied().max().unwrap_or(0);
    let mut computed = Table::new([
        "replaying from the proxy's own copy (computed)",
        "proxy holds",
        "vs full copy",
        "replayable mid-body",
    ]);
    let share = |n: u64| {
        if in_flight > 0 {
            format!("{:.2}%", n as f64 * 100.0 / in_flight as f64)
        } else {
            "-".to_owned()
        }
    };
    computed.row([
        "full copy of every in-flight body (sum of body sizes)".to_owned(),
        table::bytes(in_flight),
        share(in_flight),
        format!("{0}/{0}", load.uploads),
    ]);
    for cap in [16 * KIB, MIB] {
        let replayable = if load.size <= cap { load.uploads } else { 0 };
        let holds = load.uploads * cap.min(load.size);
        computed.row([
            format!("replay buffer capped at {} per request", table::bytes(cap)),
            table::bytes(holds),
            share(holds),
            format!(
                "{replayable}/{} past their first {}",
                load.uploads,
                table::bytes(cap)
            ),
        ]);
    }
    computed.row([
        "ReplayLayer (measured max_held_bytes; the origin echoes)".to_owned(),
        table::bytes(layer),
        share(layer),
        format!("{0}/{0}", load.uploads),
    ]);
    computed.print();
    if let (Some(layer), Some(full)) = (
        ours.get(1).and_then(Summary::heap_growth),
        ours.get(2).and_then(Summary::heap_growth),
    ) {
        let moved = full.0.saturating_sub(layer.0);
        println!(
            "  The bytes do not vanish: the origins' PartialPostReplayLayer keeps every body byte \
             its handler consumed until the body is complete, for the echo (PROTOCOL.md part A, \
             server 4). Heap growth with it vs without: {} = {} of the in-flight bytes, held \
             at the origins instead of the proxy.",
            table::bytes_delta(layer.0, full.0),
            share(moved),
        );
    }
}

/// Row 3: the rolling restart with replay, against the same without it.
pub(crate) fn print_restart(plan: &Plan, with: &restart::Outcome, without: &restart::Outcome) {
    let scenario = plan.restart;
    println!(
        "Row 3. Rolling restart: {} uploads x {}, each paced over {}; both origins restart \
         once ({} drain window)",
        scenario.uploads,
        table::bytes(scenario.size),
        table::secs(scenario.upload_time),
        table::secs(scenario.drain)
    );
    let mut rows = Table::new(["", "replay on", "replay off (baseline)"]);
    let failures = |o: &restart::Outcome| {
        if o.failures.is_empty() {
            "-".to_owned()
        } else {
            o.failures
                .iter()
                .map(|(label, count)| format!("{count} x {label}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let on_only = |value: String| (value, "-".to_owned());
    let lines: [(&str, (String, String)); 8] = [
        (
            "uploads succeeded",
            (
                format!("{}/{}", with.succeeded, with.started),
                format!("{}/{}", without.succeeded, without.started),
            ),
        ),
        ("failures", (failures(with), failures(without))),
        (
            "wall time",
            (table::secs(with.wall), table::secs(without.wall)),
        ),
        (
            "client bytes sent in failed uploads",
            (table::bytes(with.wasted), table::bytes(without.wasted)),
        ),
        ("replays", on_only(with.replays.to_string())),
        ("bytes echoed", on_only(table::bytes(with.echoed))),
        ("replays failed", on_only(with.replay_failed.to_string())),
        (
            "ReplayLayer max_held_bytes",
            on_only(table::bytes(with.max_held)),
        ),
    ];
    for (name, (on, off)) in lines {
        rows.row([name.to_owned(), on, off]);
    }
    rows.print();
}

/// `value` relative to `base`, in percent.
fn percent(value: f64, base: f64) -> f64 {
    if base > 0.0 {
        (value / base - 1.0) * 100.0
    } else {
        0.0
    }
}
