//! `--endpoint dns:///NAME:PORT`: every address the name resolves to is a replica with a
//! lane of its own, as if each had been given with `--endpoint`. The name is resolved with
//! the system's resolver (getaddrinfo: /etc/hosts, then DNS) at the start and again every
//! `--resolve-every-secs`: an address that appears gets a lane; one that disappears has
//! its lane retired (it takes no new items, finishes those it has, then ends). That is how
//! a Kubernetes headless Service's replicas are used, scaling included.
//!
//! gRPC's own `dns:///` resolvers re-resolve only when a connection fails, so a replica
//! added by scaling up would never be used; hence the periodic lookups here.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::lanes::{self, LaneEnd, LaneSettings, Rpc};
use super::ledger::Ledger;
use super::Options;

/// The `NAME:PORT` of a `dns:///NAME:PORT` endpoint, or `None` for other endpoints.
///
/// # Errors
/// A message naming the endpoint when it is `dns:` but not `dns:///NAME:PORT` (a DNS
/// server in the authority, `dns://HOST/...`, is not supported).
pub fn dns_target(endpoint: &str) -> Result<Option<(String, u16)>, String> {
    let Some(rest) = endpoint.strip_prefix("dns:") else {
        return Ok(None);
    };
    let target = match rest.strip_prefix("//") {
        Some(after) => match after.split_once('/') {
            Some(("", target)) => target,
            _ => {
                return Err(format!(
                    "--endpoint {endpoint}: a DNS server in the address is not supported; \
                     use dns:///NAME:PORT (the system's resolver)"
                ))
            }
        },
        None => rest,
    };
    let bad =
        || format!("--endpoint {endpoint}: expected dns:///NAME:PORT with a port from 1 to 65535");
    let (host, port) = target.rsplit_once(':').ok_or_else(bad)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok(Some((host.to_string(), port)))
}

/// Run lanes for every address of `host:port` until the ledger is finished, or until no
/// address has had a lane for `settings.give_up_after` (the name does not resolve, or
/// every replica behind it was given up).
///
/// # Errors
/// Only when the output or errors file cannot be written.
pub async fn lanes<R: Rpc>(
    host: String,
    port: u16,
    every: Duration,
    ledger: Arc<Ledger>,
    options: Arc<Options>,
    settings: LaneSettings,
) -> std::io::Result<LaneEnd> {
    let endpoint = format!("dns:///{host}:{port}");
    // Lanes taking new items, by address; retired lanes are only in `tasks`.
    let mut live: HashMap<SocketAddr, watch::Sender<bool>> = HashMap::new();
    // Addresses whose lane gave up, and when: not retried before give_up_after more.
    let mut gave_up: HashMap<SocketAddr, Instant> = HashMap::new();
    let mut tasks: JoinSet<(SocketAddr, std::io::Result<LaneEnd>)> = JoinSet::new();
    let mut idle_since: Option<Instant> = None;
    let mut why = String::from("no address yet");
    loop {
        match tokio::net::lookup_host((host.as_str(), port)).await {
            Ok(found) => {
                let found: BTreeSet<SocketAddr> = found.collect();
                if found.is_empty() {
                    why = format!("{host} has no address");
                }
                for &addr in &found {
                    let cooling = gave_up
                        .get(&addr)
                        .is_some_and(|at| at.elapsed() < settings.give_up_after);
                    if live.contains_key(&addr) || cooling {
                        continue;
                    }
                    gave_up.remove(&addr);
                    tracing::info!(endpoint, %addr, "replica added: a lane of its own");
                    let (retire_tx, retire_rx) = watch::channel(false);
                    let lane_settings = LaneSettings {
                        retire: Some(retire_rx),
                        ..settings.clone()
                    };
                    let (ledger, options) = (ledger.clone(), options.clone());
                    tasks.spawn(async move {
                        let end = lanes::remote::<R>(
                            format!("http://{addr}"),
                            ledger,
                            options,
                            lane_settings,
                        )
                        .await;
                        (addr, end)
                    });
                    live.insert(addr, retire_tx);
                }
                live.retain(|addr, retire| {
                    let keep = found.contains(addr);
                    if !keep {
                        tracing::info!(endpoint, %addr, "replica gone from the name: its lane finishes its items");
                        let _ = retire.send(true);
                    }
                    keep
                });
            }
            Err(err) => {
                // Keep the lanes we have: a resolver hiccup is no reason to stop using them.
                why = format!("cannot resolve {host}: {err}");
                tracing::warn!(endpoint, "{why}; keeping the known addresses");
            }
        }
        if tasks.is_empty() {
            let since = *idle_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= settings.give_up_after {
                tracing::warn!(endpoint, "giving up on this endpoint: {why}");
                return Ok(LaneEnd::GaveUp(format!("{endpoint}: {why}")));
            }
        } else {
            idle_since = None;
        }
        // With no lane at all, look again soon; otherwise at the set interval.
        let wait = if tasks.is_empty() {
            every.min(Duration::from_secs(1))
        } else {
            every
        };
        let next_lookup = tokio::time::sleep(wait);
        tokio::pin!(next_lookup);
        loop {
            tokio::select! {
                _ = &mut next_lookup => break,
                _ = ledger.finished() => {
                    while let Some(done) = tasks.join_next().await {
                        joined(done)?.1?;
                    }
                    return Ok(LaneEnd::Finished);
                }
                Some(done) = tasks.join_next() => {
                    let (addr, end) = joined(done)?;
                    match end? {
                        // Retired, or the work is done (the branch above then returns).
                        LaneEnd::Finished => {}
                        LaneEnd::GaveUp(lane_why) => {
                            why = lane_why;
                            if live.remove(&addr).is_some() {
                                gave_up.insert(addr, Instant::now());
                            }
                        }
                    }
                    if tasks.is_empty() {
                        break;
                    }
                }
            }
        }
    }
}

fn joined<T>(done: Result<T, tokio::task::JoinError>) -> std::io::Result<T> {
    done.map_err(|e| std::io::Error::other(format!("a lane panicked: {e}")))
}

#[cfg(test)]
mod tests {
    use super::dns_target;

    #[test]
    fn dns_endpoints_are_parsed_and_bad_ones_named() {
        assert_eq!(dns_target("http://127.0.0.1:50051"), Ok(None));
        assert_eq!(
            dns_target("dns:///gist-headless.gist.svc:50051"),
            Ok(Some(("gist-headless.gist.svc".into(), 50051)))
        );
        assert_eq!(
            dns_target("dns:gist:50051"),
            Ok(Some(("gist".into(), 50051)))
        );
        assert_eq!(dns_target("dns:///[::1]:7"), Ok(Some(("::1".into(), 7))));
        for bad in [
            "dns:///gist",
            "dns:///gist:0",
            "dns:///gist:x",
            "dns:///:50051",
        ] {
            let err = dns_target(bad).unwrap_err();
            assert!(
                err.contains(bad) && err.contains("dns:///NAME:PORT"),
                "{err}"
            );
        }
        let err = dns_target("dns://8.8.8.8/gist:50051").unwrap_err();
        assert!(err.contains("DNS server"), "{err}");
    }
}
