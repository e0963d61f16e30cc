//! Spike: the connections beyond `initial_conns` arrive while the others
//! chat, spread evenly over `ramp_secs` from the start of the run.

use std::time::Duration;

use futures::{stream, StreamExt};
use tokio::time::Instant;

use crate::{conn::Conns, fleet::Fleet, scenarios::Params, schedule};

/// Opens the late connections and starts reading them (unaudited: they miss
/// the start of the window); returns how many failed to open.
pub async fn ramp(params: &Params, fleet: &Fleet, conns: &mut Conns<'_>, t0_us: u64) -> usize {
    let initial = params.initial_conns.min(params.conns);
    if initial >= params.conns {
        return 0;
    }
    let ramp = Duration::from_secs_f64(params.ramp_secs.max(0.001));
    let late = params.conns - initial;
    schedule::sleep_until(t0_us).await;
    let begun = Instant::now();
    let arrivals: Vec<_> = (initial..params.conns)
        .map(|i| {
            let at = begun + ramp.mul_f64((i - initial) as f64 / late as f64);
            async move {
                tokio::time::sleep_until(at).await;
                (i, fleet.open(i, params.room_of(i)).await)
            }
        })
        .collect();
    let arrived: Vec<_> = stream::iter(arrivals)
        .buffer_unordered(4096)
        .collect()
        .await;
    let mut failures = 0;
    for (i, result) in arrived {
        match result {
            Ok((tx, rx)) => conns.start(i, tx, rx, false),
            Err(_) => failures += 1,
        }
    }
    failures
}
