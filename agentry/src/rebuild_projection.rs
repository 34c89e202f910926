//! `agentry projections rebuild NAME`: one read model rebuilt beside the live one and switched
//! to (projections/src/rebuild), with progress on stderr.

use std::sync::Mutex;

use projections::rebuild::{RebuildError, rebuild};

use crate::platform::Platform;
use crate::progress::Progress;
use crate::startup::background_projectors;

/// Rebuilds the read model `name`; answers the line to print.
pub async fn rebuild_projection(platform: &Platform, name: &str) -> anyhow::Result<String> {
    let projectors = background_projectors();
    let rebuildable: Vec<&str> = projectors
        .iter()
        .filter(|projector| !projector.tables().is_empty())
        .map(|projector| projector.name())
        .collect();
    let Some(projector) = projectors.iter().find(|projector| projector.name() == name) else {
        anyhow::bail!("no read model named {name:?}; one of: {}", rebuildable.join(", "));
    };
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&platform.pool)
        .await?;
    let progress = Mutex::new(Progress::new(
        "projections rebuild",
        "events",
        Some(u64::try_from(total).unwrap_or(0)),
    ));
    let report = rebuild(&platform.store, projector.clone(), |step| {
        let mut progress = progress.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if step.switched {
            progress.finish(step.events);
        } else {
            progress.show(step.events);
        }
    })
    .await
    .map_err(|error| match error {
        RebuildError::NotRebuildable(_) => {
            anyhow::anyhow!("{error}; these can be: {}", rebuildable.join(", "))
        }
        RebuildError::Database(_) => anyhow::Error::from(error),
    })?;
    Ok(format!(
        "{name} rebuilt from {} events in {:.1} s and switched to (the switch held the live tables {} ms); checkpoint at position {}",
        report.events,
        report.elapsed.as_secs_f64(),
        report.switch.as_millis(),
        report.checkpoint.position
    ))
}
