//! What the Rust sides of the benchmarks share (bench/run.py): peak memory, percentiles
//! computed the way the Python peers compute them (bench/peers/peerlib.py), rounding.
#![allow(dead_code)] // each example uses its own subset

/// gist's rust-bert engine on the CPU with the models of `models` and `threads` libtorch
/// intra-op threads (0: libtorch's default), as `gist serve --device cpu` loads them.
#[cfg(feature = "libtorch")]
pub fn cpu_models(models: &std::path::Path, threads: usize) -> gist::engine::EngineArgs {
    cpu_models_on(models, threads, gist::engine::Backend::RustBert)
}

/// The same with the engine `engine` (`threads` are then that runtime's intra-op threads).
pub fn cpu_models_on(
    models: &std::path::Path,
    threads: usize,
    engine: gist::engine::Backend,
) -> gist::engine::EngineArgs {
    gist::engine::EngineArgs {
        models: models.to_path_buf(),
        backend: engine,
        device: gist::engine::Device::Cpu,
        threads,
        ..Default::default()
    }
}

/// Peak resident memory of this process so far, in MB (VmHWM).
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Element floor(n × p) of sorted latencies (0 when empty), as peerlib.percentile.
pub fn percentile(sorted_ms: &[f64], p: f64) -> f64 {
    if sorted_ms.is_empty() {
        return 0.0;
    }
    sorted_ms[((sorted_ms.len() as f64 * p) as usize).min(sorted_ms.len() - 1)]
}

/// `x` rounded to `places` decimals, for JSON output.
pub fn round(x: f64, places: i32) -> f64 {
    (x * 10f64.powi(places)).round() / 10f64.powi(places)
}

/// The median of unsorted values (0 when empty), as Python's statistics.median.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// A comma-separated list of positive integers.
pub fn int_list(text: &str) -> Result<Vec<usize>, String> {
    let values: Vec<usize> = text
        .split(',')
        .filter(|v| !v.trim().is_empty())
        .map(|v| v.trim().parse::<usize>().map_err(|e| format!("{v:?}: {e}")))
        .collect::<Result<_, _>>()?;
    if values.is_empty() || values.contains(&0) {
        return Err(format!("expected positive integers, got {text:?}"));
    }
    Ok(values)
}

/// The intra-op threads the run used: libtorch's own count on rust-bert (it may differ
/// from the request when that is 0), else the request.
pub fn threads(engine: gist::engine::Backend, requested: usize) -> usize {
    #[cfg(feature = "libtorch")]
    if engine == gist::engine::Backend::RustBert {
        return tch::get_num_threads() as usize;
    }
    let _ = engine;
    requested
}
